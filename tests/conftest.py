"""Shared fixtures: database URLs for both journals, signing keys, a bridge wired to emulators.

PostgreSQL tests run against the server at SGBRIDGE_TEST_POSTGRES_URL (default: the local one).
When it cannot be reached they are skipped locally, and fail under CI=true, so a CI run never
passes while silently leaving the PostgreSQL journal untested.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sgbridge.emulators.webhook_signing import WebhookKeyPair, frame_events, generate_keypair, sign

PG_ADMIN_URL = os.environ.get("SGBRIDGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PEER_FIXTURES = SHARED / "fixtures" / "peers"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test; dropped afterwards."""
    problem = _pg_available()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {PG_ADMIN_URL}: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    import psycopg

    name = f"sgbridge_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'journal.db'}"
    else:
        yield from postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal.db'}"


@pytest.fixture(scope="session")
def keypair() -> WebhookKeyPair:
    return generate_keypair()


@dataclass
class SignedPost:
    body: bytes
    headers: dict[str, str]


def signed(keypair: WebhookKeyPair, events: list[dict[str, Any]] | bytes, timestamp: str = "1700000000") -> SignedPost:
    body = events if isinstance(events, bytes) else frame_events(events)
    return SignedPost(body, {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": sign(keypair.private_key, timestamp, body),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    })


@dataclass
class BridgeHarness:
    client: httpx.AsyncClient  # talks to the bridge
    segment: Any  # the Segment emulator's state (SegmentEmulatorState)
    segment_app: Any
    app: Any
    keypair: WebhookKeyPair

    @property
    def bridge(self) -> Any:
        return self.app.state.bridge

    async def post(self, events: list[dict[str, Any]] | bytes, path: str = "/webhooks/sendgrid",
                   **extra_headers: str) -> httpx.Response:
        post = signed(self.keypair, events)
        return await self.client.post(path, content=post.body, headers={**post.headers, **extra_headers})

    async def fault(self, spec: dict[str, Any]) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.segment_app), base_url="http://seg") as c:
            (await c.post("/_emulator/faults", json=spec)).raise_for_status()

    async def wait_delivered(self, count: int, timeout: float = 20.0) -> None:
        import anyio

        with anyio.fail_after(timeout):
            while self.segment.accepted < count:
                await anyio.sleep(0.02)


BridgeFactory = Callable[..., Any]


@pytest.fixture
def bridge_factory(monkeypatch: pytest.MonkeyPatch, keypair: WebhookKeyPair, sqlite_url: str) -> BridgeFactory:
    """Builds a bridge (env-configured like a user would) wired to an in-process Segment emulator."""
    from contextlib import asynccontextmanager

    from sgbridge.app import build_app
    from sgbridge.emulators.segment import create_segment_emulator
    from sgbridge.settings import load_settings

    @asynccontextmanager
    async def make(database_url: str | None = None, config: str | None = None,
                   **env: str | None) -> AsyncIterator[BridgeHarness]:
        defaults = {
            "SENDGRID_WEBHOOK_PUBLIC_KEY": keypair.public_key_base64,
            "SEGMENT_WRITE_KEY": "test-write-key",
            "SEGMENT_ENDPOINT": "http://segment.test",
            "SGBRIDGE_DATABASE_URL": database_url or sqlite_url,
            "SGBRIDGE_DELIVERY__BACKOFF_INITIAL_SECONDS": "0.05",
            "SGBRIDGE_DELIVERY__BACKOFF_MAX_SECONDS": "0.5",
            "SGBRIDGE_WAREHOUSE__ENABLED": "false",  # tests/warehouse/ turn it on
            # The console's search index: beside the test's files (with PostgreSQL it would be the cwd's).
            "SGBRIDGE_CONSOLE__SEARCH_INDEX_PATH": sqlite_url.removeprefix("sqlite:///") + "-search",
        }
        for key, value in {**defaults, **env}.items():
            if value is None:  # None removes a variable an earlier harness in the same test set
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        segment_app = create_segment_emulator(["test-write-key", "other-write-key"])
        app = build_app(load_settings(config), transport=httpx.ASGITransport(app=segment_app))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge") as client,
        ):
            yield BridgeHarness(client, segment_app.state.emulator.state, segment_app, app, keypair)

    return make
