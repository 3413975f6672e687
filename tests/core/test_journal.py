"""The journal contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from sgbridge.inbound.sendgrid import parse_events
from sgbridge.journal import Journal
from sgbridge.journal.housekeeping import prune
from sgbridge.journal.journal import BACKGROUND_CACHE_MB
from sgbridge.model import InboundRequest, OutcomeRecord, StoredEvent
from sgbridge.outcomes import DELIVERED, REJECTED, REPLAY_REQUESTED
from sgbridge.settings import IngestSettings

pytestmark = pytest.mark.anyio


def _request(ids: list[str], source: str = "default", received_at: float | None = None) -> InboundRequest:
    events = [{"email": f"{i}@example.com", "event": "delivered", "sg_event_id": i, "timestamp": 1} for i in ids]
    body = orjson.dumps(events)
    return InboundRequest(source, received_at or time.time(), len(body), parse_events(source, body))


@pytest.fixture
def journal(database_url: str):  # type: ignore[no-untyped-def]
    j = Journal(database_url)
    yield j
    j.close()


async def test_append_dedupes_on_id_and_on_content(journal: Journal) -> None:
    first = await journal.append(_request(["a", "b", "c"]))
    assert (first.accepted, first.duplicates) == (3, 0)
    again = await journal.append(_request(["a", "d"]))
    assert (again.accepted, again.duplicates) == (1, 1)
    # Same content, new id: SendGrid sometimes re-sends an event under a new sg_event_id.
    body = orjson.dumps([{"email": "b@example.com", "event": "delivered", "sg_event_id": "b2", "timestamp": 1}])
    changed = await journal.append(InboundRequest("default", time.time(), len(body), parse_events("default", body)))
    assert (changed.accepted, changed.duplicates) == (0, 1)
    # Another source is another namespace.
    other = await journal.append(_request(["a"], source="eu"))
    assert other.accepted == 1
    assert journal.run_sync(lambda conn: conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]) == 5


async def test_windows_are_contiguous_and_the_cursor_waits_for_earlier_windows(journal: Journal) -> None:
    await journal.append(_request([str(i) for i in range(10)]))
    w1 = await journal.claim_window("dest", "p1", 4, 30)
    w2 = await journal.claim_window("dest", "p2", 4, 30)
    w3 = await journal.claim_window("dest", "p1", 4, 30)
    assert w1 and w2 and w3
    assert (w1.seq_lo, w1.seq_hi, w2.seq_lo, w2.seq_hi, w3.seq_lo, w3.seq_hi) == (1, 4, 5, 8, 9, 10)
    assert await journal.claim_window("dest", "p1", 4, 30) is None
    assert await journal.complete_window(w2, []) == 0  # w1 still open: the cursor may not pass it
    assert await journal.complete_window(w1, []) == 8
    assert await journal.complete_window(w3, []) == 10
    # Another destination has its own cursor over the same log.
    other = await journal.claim_window("other", "p1", 100, 30)
    assert other and len(other.events) == 10


async def test_expired_claim_is_taken_over(journal: Journal) -> None:
    await journal.append(_request(["x", "y"]))
    lost = await journal.claim_window("dest", "dead-process", 10, lease=0.01)
    time.sleep(0.05)
    taken = await journal.claim_window("dest", "live-process", 10, lease=30)
    assert lost and taken and (taken.claim_id, taken.seq_lo, taken.seq_hi) == (lost.claim_id, 1, 2)
    assert [e.seq for e in taken.events] == [1, 2]


async def test_a_window_claimed_without_bodies_gets_them_chunk_by_chunk(journal: Journal) -> None:
    """The warehouse claims windows without the events' bodies and reads them a chunk at a time:
    the same events, keys and bodies as a window claimed with them, also after a take-over."""
    await journal.append(_request([str(i) for i in range(10)]))
    await journal.append(_request(["x", "y"], source="eu"))
    full = await journal.claim_window("with", "p1", 12, 30)
    stubs = await journal.claim_window("without", "p1", 12, 30, bodies=False)
    assert full and stubs and len(full.events) == len(stubs.events) == 12
    assert {e.body for e in stubs.events} == {b""} and {e.key for e in stubs.events} == {b""}
    assert all(e.body.startswith(b"{") and e.key for e in full.events)
    # In chunks, in any order of the log, with a gap: each event gets its own body back.
    chunk = [stubs.events[7], *stubs.events[2:5], stubs.events[11]]
    assert journal.with_bodies(chunk) == [full.events[7], *full.events[2:5], full.events[11]]
    assert journal.with_bodies(stubs.events) == full.events
    assert journal.with_bodies(full.events[:3]) == full.events[:3]  # bodies already there: as they are
    # A window taken over from a dead owner is read without bodies too.
    await journal.run(lambda conn: conn.execute("UPDATE claims SET expires_at = 0 WHERE destination = 'without'"))
    again = await journal.claim_window("without", "p2", 12, 30, bodies=False)
    assert again and [e.seq for e in again.events] == [e.seq for e in full.events]
    assert {e.body for e in again.events} == {b""}
    # An event that is not in the log (never claimed so) is an error, not an empty row.
    with pytest.raises(LookupError, match="seq 999"):
        journal.with_bodies([StoredEvent(999, "default", "delivered", 0.0, b"", b"")])


async def test_an_exclusive_destination_has_one_window_in_flight_across_processes(journal: Journal) -> None:
    await journal.append(_request(["a", "b"]))
    first = await journal.claim_window("workflows", "p1", 1, lease=30, exclusive=True)
    await journal.append(_request(["c"]))
    assert first is not None and [e.seq for e in first.events] == [1]
    assert await journal.claim_window("workflows", "p2", 10, lease=30, exclusive=True) is None
    assert (await journal.claim_window("shared", "p2", 1, lease=30)) is not None  # others overlap as before
    assert (await journal.claim_window("shared", "p3", 1, lease=30)) is not None
    await journal.complete_window(first, [])
    second = await journal.claim_window("workflows", "p2", 10, lease=0.01, exclusive=True)
    assert second is not None and [e.seq for e in second.events] == [2, 3]
    time.sleep(0.05)  # p2 died holding it: its window is taken over, still one at a time
    taken = await journal.claim_window("workflows", "p3", 10, lease=30, exclusive=True)
    assert taken is not None and taken.claim_id == second.claim_id
    assert await journal.claim_window("workflows", "p4", 10, lease=30, exclusive=True) is None


async def test_a_claim_is_renewed_only_by_its_owner(journal: Journal) -> None:
    await journal.append(_request(["x", "y"]))
    window = await journal.claim_window("dest", "p1", 10, lease=0.05)
    assert window is not None
    assert await journal.renew_claim(window.claim_id, "p2", 30) is False  # not its claim
    assert await journal.renew_claim(window.claim_id, "p1", 30) is True
    time.sleep(0.1)  # past the first lease: renewed, so nobody takes it over
    assert await journal.claim_window("dest", "p2", 10, lease=30) is None
    await journal.complete_window(window, [])
    assert await journal.renew_claim(window.claim_id, "p1", 30) is False  # done


async def test_dead_letters_replay_and_settle(journal: Journal) -> None:
    await journal.append(_request(["p", "q", "r"]))
    window = await journal.claim_window("dest", "p1", 10, 30)
    assert window
    await journal.complete_window(window, [OutcomeRecord(2, REJECTED, "HTTP 400: nope", 400)])
    dead = journal.dead_letters()
    assert [(d["seq"], d["reason"], d["sg_event_id"]) for d in dead] == [(2, "HTTP 400: nope", "q")]
    assert journal.request_replay([dead[0]["id"]]) == 1
    assert journal.request_replay([dead[0]["id"]]) == 0  # already queued
    replay = await journal.claim_replays("dest", 10, 30)
    assert replay and [e.seq for e in replay.events] == [2]
    assert await journal.claim_replays("dest", 10, 30) is None  # claimed once
    await journal.settle_replays("dest", [OutcomeRecord(2, DELIVERED, "delivered on replay", 200)], {})
    assert journal.dead_letters() == []
    assert journal.stats()["outcomes"] == {f"dest:{DELIVERED}": 1}
    assert REPLAY_REQUESTED not in str(journal.stats())


async def test_prune_keeps_undelivered_events_and_dead_letters(journal: Journal) -> None:
    old = time.time() - 30 * 86400
    await journal.append(_request(["o1", "o2", "o3"], received_at=old))
    await journal.append(_request(["n1"]))
    window = await journal.claim_window("dest", "p1", 2, 30)  # covers o1, o2 only
    assert window
    await journal.complete_window(window, [OutcomeRecord(1, REJECTED, "bad", 400)])
    removed = await prune(journal, IngestSettings(), ["dest"])
    assert removed == 1  # o2: delivered and old. o1 is a dead letter, o3 is not delivered yet.
    assert [d["seq"] for d in journal.dead_letters()] == [1]
    # Dedupe still works for what is kept.
    assert (await journal.append(_request(["o3", "n1"], received_at=old))).duplicates == 2


def test_a_relaxed_journal_still_waits_for_the_disk_where_a_job_asks(tmp_path: Path) -> None:
    """Delivery processes' progress commits skip the fsync; the emails' guard never does."""
    journal = Journal(f"sqlite:///{tmp_path / 'j.db'}", relaxed_progress=True)
    strict = Journal(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        level = lambda conn: int(conn.execute("PRAGMA synchronous").fetchone()[0])  # noqa: E731
        assert journal.run_sync(level) == 1  # NORMAL
        assert asyncio.run(journal.run(level, durable=True)) == 2  # FULL for this commit
        assert journal.run_sync(level) == 1  # and back
        assert strict.run_sync(level) == 2
    finally:
        journal.close()
        strict.close()


def test_processes_that_do_not_ingest_keep_a_small_sqlite_page_cache(tmp_path: Path) -> None:
    """The ingest writer keeps its dedupe indexes in a 64 MB cache; a delivery process reads the log
    once, front to back, and a cache that size only added to its memory (per connection)."""
    relaxed = Journal(f"sqlite:///{tmp_path / 'j.db'}", relaxed_progress=True)
    strict = Journal(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        kib = lambda conn: -int(conn.execute("PRAGMA cache_size").fetchone()[0])  # noqa: E731
        assert relaxed.run_sync(kib) == BACKGROUND_CACHE_MB * 1024 < strict.run_sync(kib)
        assert strict.run_sync(kib) == 64 * 1024
        assert kib(relaxed.dialect.connect()) == BACKGROUND_CACHE_MB * 1024  # every connection, readers too
    finally:
        relaxed.close()
        strict.close()


@pytest.mark.postgres
def test_the_lock_free_reader_reconnects_after_the_database_dropped_it() -> None:
    """Delivery lanes poll latest_seq; one dropped connection must not fail every later poll."""
    import psycopg

    from tests.conftest import postgres_database

    for url in postgres_database():
        journal = Journal(url)
        try:
            assert journal.latest_seq() == 0
            with psycopg.connect(url, autocommit=True) as admin:  # as a database restart would
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                              "current_database() AND pid <> pg_backend_pid()")
            with pytest.raises(psycopg.Error):
                journal.latest_seq()
            assert journal.latest_seq() == 0  # a new connection
        finally:
            journal.close()


@pytest.mark.postgres
def test_the_writer_survives_a_database_that_refuses_connections_for_a_while() -> None:
    """A failed reconnect ended the writer thread: every later append then waited for ever."""
    import psycopg

    from tests.conftest import postgres_database

    for url in postgres_database():
        journal = Journal(url)
        try:
            seen = lambda conn: int(conn.execute("SELECT 1").fetchone()[0])  # noqa: E731
            assert journal.run_sync(seen) == 1
            name = url.rsplit("/", 1)[1]
            with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')  # "down"
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                              (name,))
            try:
                for _ in range(2):  # the broken connection, then a refused reconnect: each fails, neither hangs
                    with pytest.raises(psycopg.Error):
                        journal._submit(seen).result(timeout=10)
            finally:
                with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
                    admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            assert journal._submit(seen).result(timeout=10) == 1  # back
        finally:
            journal.close()


def test_a_read_after_close_is_refused_and_opens_no_connection(tmp_path: Path) -> None:
    """A thread that outlives its process's shutdown (a lane's look at the newest seq, a load's
    read of its bodies) must not open a connection that nobody closes."""
    from sgbridge.journal.journal import JournalClosed

    journal = Journal(f"sqlite:///{tmp_path / 'closed.db'}")
    assert journal.latest_seq() == 0  # the reader is open
    journal.close()
    with pytest.raises(JournalClosed):
        journal.latest_seq()
    with pytest.raises(JournalClosed):
        journal.with_bodies([StoredEvent(1, "default", "open", 0.0, b"", b"")])
    assert journal._reader is None
    assert isinstance(JournalClosed("x"), ConnectionError)  # what was reading retries, never rejects
