"""Two `sgbridge serve` processes on one PostgreSQL database deliver each event once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import psycopg
import pytest

from sgbridge.emulators.event_factory import EventFactory
from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.emulators.sendgrid_webhook import WebhookSender
from sgbridge.emulators.serving import serve_in_thread
from sgbridge.emulators.webhook_signing import generate_keypair
from tests.conftest import postgres_database
from tests.process.conftest import Server, running

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.anyio]


@pytest.fixture
def pg_url():  # type: ignore[no-untyped-def]
    yield from postgres_database()


async def test_two_processes_share_the_work_and_deliver_once(pg_url: str, tmp_path: Path) -> None:
    keys = generate_keypair()
    events = EventFactory(41).batch(4000)
    forwardable = {e["sg_event_id"] for e in events if e["event"] != "deferred"}
    segment_app = create_segment_emulator(["wk"])
    segment = segment_app.state.emulator.state
    env = {"SENDGRID_WEBHOOK_PUBLIC_KEY": keys.public_key_base64, "SEGMENT_WRITE_KEY": "wk",
           "SGBRIDGE_DATABASE_URL": pg_url, "SGBRIDGE_DELIVERY__WINDOW_EVENTS": "200"}
    with serve_in_thread(segment_app) as segment_url:
        env["SEGMENT_ENDPOINT"] = segment_url
        with running(Server(env, tmp_path / "a.log")) as a, running(Server(env, tmp_path / "b.log")) as b:
            senders = [WebhookSender(f"{s.url}/webhooks/sendgrid", keys.private_key, rate=2000, batch_size=50,
                                     concurrency=3) for s in (a, b)]
            await asyncio.gather(senders[0].run(events=events[:2000]), senders[1].run(events=events[2000:]))
            with anyio.fail_after(60):
                while segment.accepted < len(forwardable):
                    await anyio.sleep(0.1)
            await anyio.sleep(1.0)
    received = [m["properties"]["sg_event_id"] for m in segment.messages()]
    assert set(received) == forwardable
    assert len(received) == len(forwardable)
    assert segment.duplicates == 0, "a delivery was made twice"
    with psycopg.connect(pg_url) as conn:  # the work was split into many small windows
        batches = conn.execute("SELECT COUNT(*) FROM attempts WHERE outcome = 'delivered'").fetchone()
    assert batches is not None and batches[0] >= len(forwardable) // 200
