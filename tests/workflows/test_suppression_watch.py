"""The suppression watch: SendGrid's suppression lists (the emulator, on a real socket: the reader
is blocking) → SendGrid events of the journal → template 4's workflow → identify calls in the
Segment emulator. An address suppressed in SendGrid with no webhook event reaches Segment once; what
the webhook already told, and what sgbridge itself suppressed for Segment, does not go back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.emulators.serving import serve_in_thread
from sgbridge.inbound.suppression_lists import SuppressionWatch
from sgbridge.journal import Journal
from sgbridge.settings import Settings, load_settings
from sgbridge.workflows.engine import LiveActions
from sgbridge.workflows.settings import SuppressionWatchSettings
from tests.workflows.harness import API_KEY, World, identify, sendgrid_event

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workflows" / "suppressions-both-ways.toml"
SEGMENT = "http://segment.test"


@pytest.fixture
def sendgrid_url() -> Iterator[str]:
    with serve_in_thread(create_sendgrid_emulator([API_KEY], job_delay_seconds=0.0)) as url:
        yield url


class Watched:
    def __init__(self, w: World, watch: SuppressionWatch, sendgrid: httpx.AsyncClient,
                 segment: httpx.AsyncClient) -> None:
        self.w, self.watch, self.sendgrid, self.segment = w, watch, sendgrid, segment
        self.applied = 0

    async def poll(self) -> dict[str, int]:
        """The watch reads the lists; the workflows take what it stored, as the intake's worker would."""
        stored = await asyncio.to_thread(self.watch.poll_once)
        window = await self.w.journal.claim_window("workflows", "test", 10_000, 60)
        if window is not None:
            await self.w.intake.deliver(window.events)
            await self.w.journal.complete_window(window, [])
        await self.w.run()
        return stored

    async def identifies(self) -> list[dict[str, Any]]:
        found = (await self.segment.get("/_emulator/messages", params={"type": "identify"})).json()["messages"]
        return [{k: v for k, v in m["traits"].items()} for m in found]

    async def suppress(self, *emails: str, group: int | None = None) -> None:
        path = "/v3/asm/suppressions/global" if group is None else f"/v3/asm/groups/{group}/suppressions"
        (await self.sendgrid.post(path, json={"recipient_emails": list(emails)})).raise_for_status()

    def stored(self) -> list[dict[str, Any]]:
        rows = self.w.journal.run_sync(lambda conn: conn.execute(
            "SELECT body FROM events WHERE source = 'default' ORDER BY seq").fetchall())
        return [orjson.loads(bytes(r[0])) for r in rows]


def _settings(url: str) -> Settings:
    settings = load_settings(EXAMPLE)
    settings.suppression_watch = SuppressionWatchSettings(enabled=True)
    settings.sources["default"] = settings.sources["default"].model_copy(
        update={"api_key": SecretStr(API_KEY), "api_endpoint": url})
    settings.actions["sendgrid"] = settings.actions["sendgrid"].model_copy(update={"endpoint": url})
    return settings


@asynccontextmanager
async def watched(database_url: str, url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Watched]:
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    settings = _settings(url)
    journal = Journal(database_url)
    segment_app = create_segment_emulator(write_keys=["wk"])
    try:
        async with (httpx.AsyncClient(mounts={SEGMENT: httpx.ASGITransport(app=segment_app)}) as client,
                    httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}) as sendgrid,
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=segment_app), base_url=SEGMENT) as segment):
            w = World(journal, settings)
            w.port = w.engine.actions = LiveActions(w.workflows, settings.actions, journal, client,
                                                    segment_url=SEGMENT, write_key="wk")
            for n in range(42):  # the account's groups, up to the example's (42)
                (await sendgrid.post("/v3/asm/groups", json={"name": f"group {n + 1}",
                                                             "description": "d"})).raise_for_status()
            yield Watched(w, SuppressionWatch(settings, journal), sendgrid, segment)
    finally:
        journal.close()


async def test_an_opt_out_made_in_sendgrid_reaches_segment_once(database_url: str, sendgrid_url: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    async with watched(database_url, sendgrid_url, monkeypatch) as h:
        await h.suppress("old@example.com")  # before the watch began: noted, not sent
        first = await h.poll()
        await h.suppress("cy@example.com")
        await h.suppress("dee@example.com", group=1)
        (await h.sendgrid.post("/_emulator/suppressions/spam_reports",
                               json=[{"email": "erin@example.com"}])).raise_for_status()
        second = await h.poll()
        third = await h.poll()  # nothing new: read from where the lists stood
        sent = await h.identifies()
        stored = h.stored()
    assert sum(first.values()) == 0
    assert second == {"unsubscribes": 1, "group_unsubscribes": 1, "spam_reports": 1, "bounces": 0}
    assert sum(third.values()) == 0
    assert sorted(sent, key=lambda t: t["email"]) == [
        {"unsubscribed": True, "email": "cy@example.com"},
        {"unsubscribed_group_1": True, "email": "dee@example.com"},
        {"spam_reported": True, "email": "erin@example.com"}]
    assert {e["event"] for e in stored} == {"unsubscribe", "group_unsubscribe", "spamreport"}
    assert all(e["sgbridge_origin"] == "suppression_list" and e["sg_event_id"].startswith("sgbridge-list-")
               for e in stored)


async def test_what_the_webhook_told_or_sgbridge_did_is_not_sent_again(database_url: str, sendgrid_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    async with watched(database_url, sendgrid_url, monkeypatch) as h:
        await h.poll()
        # gus unsubscribed by a link: the webhook told of it, and the list has him too
        await h.w.send(sendgrid_event("unsubscribe", "gus@example.com", h.w.clock()))
        await h.w.run()
        await h.suppress("gus@example.com")
        # fay opted out in the app, and hal out of the newsletter: Segment → sgbridge → SendGrid's
        # global list and group 42 (template 4); the profile remembers what sgbridge did
        await h.w.send(identify("u-fay", email="fay@example.com", unsubscribed=True),
                       identify("u-hal", email="hal@example.com", newsletter_opt_in=False))
        await h.w.run()
        lists = (await h.sendgrid.get("/_emulator/suppressions")).json()
        global_list = lists["global"]
        polled = await h.poll()
        sent = await h.identifies()
    assert "fay@example.com" in global_list and "gus@example.com" in global_list
    assert polled["unsubscribes"] == 0 and polled["group_unsubscribes"] == 0
    assert "hal@example.com" in str(lists["groups"])
    assert sent == [{"unsubscribed": True, "email": "gus@example.com"}]  # the webhook's, once
