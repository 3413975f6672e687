"""A bridge with action destinations, wired in-process to the Segment and SendGrid emulators."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

from sgbridge.app import build_app
from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.settings import load_settings

WRITE_KEY = "inbound-key"
SENDGRID_HOST = "sendgrid.test"


class HostRouter(httpx.AsyncBaseTransport):
    """Sends each request to the in-process app serving its host (real HTTP semantics, no sockets)."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[request.url.host].handle_async_request(request)


@dataclass
class ActionsHarness:
    bridge_client: httpx.AsyncClient
    sendgrid: httpx.AsyncClient  # the SendGrid emulator, for /_emulator/* inspection and control
    app: Any

    async def send(self, *events: dict[str, Any]) -> httpx.Response:
        token = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
        response = await self.bridge_client.post("/v1/batch", json={"batch": list(events)},
                                                 headers={"Authorization": f"Basic {token}"})
        assert response.status_code == 200, response.text
        return response

    async def emulator(self, what: str) -> Any:
        response = await self.sendgrid.get(f"/_emulator/{what}")
        response.raise_for_status()
        return response.json()

    async def settled(self, count: int, destination: str = "sendgrid", timeout: float = 20.0) -> None:
        """Wait until the destination's cursor has passed ``count`` events."""
        journal = self.app.state.bridge.journal
        with anyio.fail_after(timeout):
            while True:
                stats = await journal.stats_async()
                if stats["cursors"].get(destination, 0) >= count:
                    return
                await anyio.sleep(0.02)


def write_config(path: Path, subscriptions: str, extra: str = "", *, name: str = "sendgrid",
                 destination: str = "sendgrid", settings: str = "") -> str:
    """A config with one action destination ``name``; ``settings``: more of its settings (TOML)."""
    path.write_text(f"""
[segment_inbound]
write_keys = ["{WRITE_KEY}"]

[actions.{name}]
destination = "{destination}"
endpoint = "http://{SENDGRID_HOST}"
job_poll_seconds = 0.02
settings = {{ sendGridApiKey = "SG.test-key"{settings} }}
{extra}
{subscriptions}
""")
    return str(path)


@asynccontextmanager
async def actions_bridge(config: str, database_url: str, monkeypatch: Any,
                         job_delay: float = 0.05) -> AsyncIterator[ActionsHarness]:
    monkeypatch.setenv("SGBRIDGE_DATABASE_URL", database_url)
    monkeypatch.setenv("SGBRIDGE_DELIVERY__BACKOFF_INITIAL_SECONDS", "0.05")
    monkeypatch.setenv("SGBRIDGE_DELIVERY__BACKOFF_MAX_SECONDS", "0.3")
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    monkeypatch.setenv("SGBRIDGE_WAREHOUSE__ENABLED", "false")
    sendgrid_app = create_sendgrid_emulator(["SG.test-key"], job_delay_seconds=job_delay)
    router = HostRouter({SENDGRID_HOST: sendgrid_app, "segment.test": create_segment_emulator(["k"])})
    app = build_app(load_settings(config), transport=router)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge") as client,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=sendgrid_app), base_url="http://sendgrid.test") as sg,
    ):
        yield ActionsHarness(client, sg, app)
