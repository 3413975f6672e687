"""kill -9 under load: every acknowledged event still reaches Segment, each once by messageId."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest

from sgbridge.emulators.event_factory import EventFactory
from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.emulators.serving import serve_in_thread
from sgbridge.emulators.webhook_signing import frame_events, generate_keypair, sign
from sgbridge.journal import Journal
from sgbridge.warehouse.tables import EVENT_TABLES
from tests.process.conftest import Server, assert_each_once, retrying_sender, running, settled, wait_for_cursor

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


async def test_kill_9_under_load_loses_nothing(journal_url: str, tmp_path: Path) -> None:
    keys = generate_keypair()
    events = EventFactory(31).batch(3000)
    kind = {e["sg_event_id"]: e["event"] for e in events}
    segment_app = create_segment_emulator(["wk"])
    segment = segment_app.state.emulator.state
    with serve_in_thread(segment_app) as segment_url:
        server = Server({"SENDGRID_WEBHOOK_PUBLIC_KEY": keys.public_key_base64, "SEGMENT_WRITE_KEY": "wk",
                         "SEGMENT_ENDPOINT": segment_url, "SGBRIDGE_DATABASE_URL": journal_url,
                         "SGBRIDGE_WAREHOUSE__ENABLED": "true", "SGBRIDGE_WAREHOUSE__FLUSH_SECONDS": "0.2",
                         "SGBRIDGE_DELIVERY__LEASE_SECONDS": "3"}, tmp_path / "serve.log")
        with running(server):
            sender = retrying_sender(server, keys.private_key)
            sending = asyncio.create_task(sender.run(events=events))
            for _ in range(2):  # crash twice while the load runs
                await asyncio.sleep(0.8)
                server.kill9()
                await asyncio.sleep(0.3)
                await asyncio.to_thread(server.start)
            summary = await sending
            acked = await settled(segment, sender, kind, journal_url)
    assert summary["logical_acked"] == len(events), summary  # the sender retried until all were acked
    # Segment and the warehouse's activity got every acknowledged event, each exactly once, despite the kills.
    assert_each_once(segment, acked, sender, tmp_path / "warehouse.duckdb")
    assert segment.accepted == len({m["properties"]["sg_event_id"] for m in segment.messages()})
    assert len(acked) > 2000
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as warehouse:
        # and each per-type table too (dlt ran a job interrupted by kill -9 again: its rows twice)
        tables = {r[0] for r in warehouse.execute("SELECT table_name FROM information_schema.tables "
                                                  "WHERE table_schema = 'sendgrid'").fetchall()}
        assert len(tables & set(EVENT_TABLES.values())) >= 9  # a table per type the factory sends
        for table in tables & set(EVENT_TABLES.values()):
            ids = [r[0] for r in warehouse.execute(f"SELECT sg_event_id FROM sendgrid.{table}").fetchall()]
            assert len(ids) == len(set(ids)), table


async def test_acknowledged_events_are_on_disk_after_kill_9(tmp_path: Path) -> None:
    keys = generate_keypair()
    database = tmp_path / "journal.db"
    server = Server({"SENDGRID_WEBHOOK_PUBLIC_KEY": keys.public_key_base64, "SEGMENT_WRITE_KEY": "",
                     "SGBRIDGE_DATABASE_URL": f"sqlite:///{database}"}, tmp_path / "serve.log")
    events = EventFactory(32).batch(500)
    with running(server):
        async with httpx.AsyncClient(base_url=server.url) as client:
            for start in range(0, len(events), 25):
                body = frame_events(events[start:start + 25])
                ts = str(int(time.time()))
                response = await client.post("/webhooks/sendgrid", content=body, headers={
                    "X-Twilio-Email-Event-Webhook-Signature": sign(keys.private_key, ts, body),
                    "X-Twilio-Email-Event-Webhook-Timestamp": ts})
                assert response.status_code == 200
        server.kill9()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sgbridge", "status", env={**server.env}, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert orjson.loads(out)["events"] == len(events)


async def test_kill_9_while_the_warehouse_sorts_out_a_refused_event(tmp_path: Path) -> None:
    """The warehouse refuses one event of a window (a column narrowed under sgbridge), and serve is
    killed three times while it loads halves of the window and gives refused loads up. Each give-up
    records what it must delete before it aborts, and the next start finishes it: in the end the
    refused event is the one dead letter, and every other event is in every table exactly once."""
    keys = generate_keypair()
    first, second = EventFactory(33).batch(50), EventFactory(34).batch(400)
    poison = second[301] = {**second[301], "asm_group_id": 100_000}  # does not fit SMALLINT
    journal_url = f"sqlite:///{tmp_path / 'journal.db'}"
    server = Server({"SENDGRID_WEBHOOK_PUBLIC_KEY": keys.public_key_base64, "SEGMENT_WRITE_KEY": "",
                     "SGBRIDGE_DATABASE_URL": journal_url, "SGBRIDGE_WAREHOUSE__ENABLED": "true",
                     "SGBRIDGE_WAREHOUSE__FLUSH_SECONDS": "0.1", "SGBRIDGE_DELIVERY__LEASE_SECONDS": "3"},
                    tmp_path / "serve.log")

    async def post(events: list[dict[str, object]]) -> None:
        body = frame_events(events)
        ts = str(int(time.time()))
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post("/webhooks/sendgrid", content=body, headers={
                "X-Twilio-Email-Event-Webhook-Signature": sign(keys.private_key, ts, body),
                "X-Twilio-Email-Event-Webhook-Timestamp": ts, "Content-Type": "application/json"})
        assert response.status_code == 200

    with running(server):
        await post(first)
        await wait_for_cursor(journal_url, "warehouse")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as warehouse:
        warehouse.execute("ALTER TABLE sendgrid.activity ALTER asm_group_id TYPE SMALLINT")
    with running(server):
        await post(second)
        for pause in (0.8, 0.3, 0.6):  # while the window's halves load and refused loads are given up
            await asyncio.sleep(pause)
            server.kill9()
            await asyncio.to_thread(server.start)
        await wait_for_cursor(journal_url, "warehouse")
    journal = Journal(journal_url)
    try:
        dead = journal.dead_letters("warehouse")
    finally:
        journal.close()
    assert [d["sg_event_id"] for d in dead] == [poison["sg_event_id"]]
    expected = sorted(e["sg_event_id"] for e in first + second if e is not poison)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as warehouse:
        activity = warehouse.execute("SELECT sg_event_id FROM sendgrid.activity").fetchall()
        assert sorted(r[0] for r in activity) == expected
        for kind in {e["event"] for e in first + second}:
            table = EVENT_TABLES.get(str(kind))
            if table:
                ids = [r[0] for r in warehouse.execute(f"SELECT sg_event_id FROM sendgrid.{table}").fetchall()]
                assert sorted(ids) == sorted(e["sg_event_id"] for e in first + second
                                             if e["event"] == kind and e is not poison), table
