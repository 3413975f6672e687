"""Streams: a destination's claims read only the events it consumes (journal/streams.py), an older
journal is upgraded on open, and ``events show`` says "not consumed" where a destination does not
read the event's stream. Run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from sgbridge.inbound.sendgrid import parse_events
from sgbridge.journal import Journal, streams
from sgbridge.journal.housekeeping import prune
from sgbridge.journal.trace import trace
from sgbridge.model import InboundEvent, InboundRequest
from sgbridge.settings import IngestSettings

pytestmark = pytest.mark.anyio


def _sendgrid(ids: list[str], received_at: float | None = None) -> InboundRequest:
    events = [{"email": f"{i}@example.com", "event": "delivered", "sg_event_id": i, "timestamp": 1} for i in ids]
    body = orjson.dumps(events)
    return InboundRequest("default", received_at or time.time(), len(body), parse_events("default", body))


def _segment(ids: list[str], received_at: float | None = None) -> InboundRequest:
    events = [InboundEvent("segment:api", "track", None, f"fp-{i}".encode(),
                           orjson.dumps({"type": "track", "event": "E", "messageId": i})) for i in ids]
    return InboundRequest("segment:api", received_at or time.time(), 1, events)


async def _mixed(journal: Journal, received_at: float | None = None) -> None:
    """seq 1-3 SendGrid, 4-5 Segment, 6-7 SendGrid, 8 Segment."""
    for request in (_sendgrid(["a", "b", "c"], received_at), _segment(["m1", "m2"], received_at),
                    _sendgrid(["d", "e"], received_at), _segment(["m3"], received_at)):
        await journal.append(request)


@pytest.fixture
def journal(database_url: str):  # type: ignore[no-untyped-def]
    j = Journal(database_url)
    yield j
    j.close()


async def test_a_claim_reads_only_its_stream_and_the_cursor_passes_the_others(journal: Journal) -> None:
    await _mixed(journal)
    first = await journal.claim_window("segment", "p", 4, 30, stream=streams.SENDGRID)
    assert first is not None and [e.seq for e in first.events] == [1, 2, 3, 6]
    await journal.complete_window(first, [])
    last = await journal.claim_window("segment", "p", 4, 30, stream=streams.SENDGRID)
    assert last is not None and [e.seq for e in last.events] == [7]
    await journal.complete_window(last, [])
    assert await journal.claim_window("segment", "p", 4, 30, stream=streams.SENDGRID) is None
    assert journal.stats()["cursors"]["segment"] == 8  # past the Segment event at the end, once idle
    actions = await journal.claim_window("sendgrid", "p", 10, 30, stream=streams.SEGMENT)
    assert actions is not None and [e.seq for e in actions.events] == [4, 5, 8]
    assert {e.source for e in actions.events} == {"segment:api"}


def _plan(journal: Journal, sql: str, params: tuple[Any, ...]) -> str:
    explain = "EXPLAIN QUERY PLAN " if journal.dialect.name == "sqlite" else "EXPLAIN "
    rows = journal.run_sync(lambda conn: conn.execute(journal.q(explain + sql), params).fetchall())
    return " ".join(str(r[-1]) for r in rows)


async def test_the_claim_query_uses_the_stream_index(journal: Journal) -> None:
    await _mixed(journal)
    if journal.dialect.name == "postgres":
        journal.run_sync(lambda conn: conn.execute("SET enable_seqscan = off"))  # a tiny table: force the choice
    plan = _plan(journal, "SELECT seq, body FROM events WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?",
                 (streams.SEGMENT, 0, 10))
    assert "events_stream" in plan, plan


async def test_pruning_waits_for_the_cursors_of_each_stream(journal: Journal) -> None:
    """The action destination's cursor (Segment's stream) no longer holds back SendGrid's events."""
    old = time.time() - 30 * 86400
    await _mixed(journal, received_at=old)
    window = await journal.claim_window("segment", "p", 100, 30, stream=streams.SENDGRID)
    assert window is not None
    await journal.complete_window(window, [])
    assert await journal.claim_window("sendgrid", "p", 1, 30, stream=streams.SEGMENT) is not None  # in flight
    removed = await prune(journal, IngestSettings(), ["segment", "sendgrid"])
    left = journal.run_sync(lambda conn: [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY seq")])
    assert (removed, left) == (5, [4, 5, 8])


async def test_events_show_says_not_consumed_for_a_destination_of_the_other_stream(journal: Journal) -> None:
    await _mixed(journal)
    for name, stream in (("warehouse", streams.SENDGRID), ("sendgrid", streams.SEGMENT)):
        while (window := await journal.claim_window(name, "p", 100, 30, stream=stream)) is not None:
            await journal.complete_window(window, [])
    segment_event = trace(journal, 4, [])
    sendgrid_event = trace(journal, 2, [])
    assert segment_event is not None and sendgrid_event is not None
    assert segment_event["destinations"]["warehouse"]["outcome"] == "not_consumed"
    assert segment_event["destinations"]["sendgrid"]["outcome"] == "delivered"
    assert sendgrid_event["destinations"]["warehouse"]["outcome"] == "delivered"
    assert sendgrid_event["destinations"]["sendgrid"]["outcome"] == "not_consumed"
    assert "segment:api" in segment_event["destinations"]["warehouse"]["reason"]


def _downgrade_to_version_4(journal: Journal) -> None:
    """What a version-4 journal looks like: no stream columns, no stream index."""
    def job(conn: Any) -> None:
        conn.execute("DROP INDEX events_stream")
        conn.execute("ALTER TABLE events DROP COLUMN stream")
        conn.execute("ALTER TABLE cursors DROP COLUMN stream")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    journal.run_sync(job)


async def test_a_version_4_journal_is_upgraded_on_open(database_url: str) -> None:
    old = Journal(database_url)
    _downgrade_to_version_4(old)
    old.run_sync(lambda conn: conn.execute("INSERT INTO cursors (destination, position) VALUES ('segment', 0)"))
    for i, source in enumerate(["default", "segment:webhook", "default", "segment:api"]):
        old.run_sync(lambda conn, i=i, source=source: conn.execute(old.q(
            "INSERT INTO events (request_id, source, received_at, event_type, id_key, fp_key, body) "
            "VALUES (1, ?, ?, 'x', NULL, ?, ?)"), (source, time.time(), f"fp{i}".encode(), b"{}")))
    old.close()

    journal = Journal(database_url)
    try:
        version = journal.run_sync(lambda conn: conn.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        assert version == "7"  # through 5 (streams), 6 (the workflow tables) to 7 (console users), added as missing
        assert journal.run_sync(lambda conn: conn.execute("SELECT COUNT(*) FROM wf_runs").fetchone()[0]) == 0
        rows = journal.run_sync(lambda conn: conn.execute("SELECT seq, stream FROM events ORDER BY seq").fetchall())
        assert [(int(s), int(t)) for s, t in rows] == [(1, 0), (2, 1), (3, 0), (4, 1)]
        window = await journal.claim_window("segment", "p", 10, 30, stream=streams.SENDGRID)
        assert window is not None and [e.seq for e in window.events] == [1, 3]
        await journal.append(_segment(["new"]))
        later = await journal.claim_window("sendgrid", "p", 10, 30, stream=streams.SEGMENT)
        assert later is not None and [e.seq for e in later.events] == [2, 4, 5]
    finally:
        journal.close()
    Journal(database_url).close()  # opening an upgraded journal again changes nothing
