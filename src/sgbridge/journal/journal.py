"""The journal: durable event log, per-destination cursors, claims, outcomes and attempts.

Every method runs its SQL in the writer thread (see writer.py) and returns an awaitable; the
``*_sync`` variants are for the CLI, which has no event loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson

from sgbridge import outcomes as oc
from sgbridge.inbound.readable import load_for_display, top_level_fields
from sgbridge.inbound.segment import SEGMENT_SOURCES
from sgbridge.journal import streams
from sgbridge.journal.dialect import DEFAULT_CACHE_MB, Dialect, dialect_for
from sgbridge.journal.streams import stream_of
from sgbridge.journal.writer import Writer
from sgbridge.model import (
    AppendResult,
    AttemptRecord,
    InboundRequest,
    OutcomeRecord,
    StoredEvent,
    Window,
)

T = TypeVar("T")
_EVENT_FIELDS = "seq, source, event_type, received_at, COALESCE(id_key, fp_key), body"
_STUB_FIELDS = "seq, source, event_type, received_at"  # a window claimed without its bodies
DEAD = (oc.REJECTED, oc.HELD)  # outcomes an operator looks at and may replay


def _text(value: str | None) -> str | None:
    """Text for a text column: reasons and details quote what the far side answered, which may hold
    an event's NUL; PostgreSQL's text cannot hold one (the commit failed, the window never settled)."""
    return value.replace("\0", "\ufffd") if value and "\0" in value else value


def _shown(value: Any) -> Any:
    """A field as a list shows it: text and numbers as they are, anything else as compact JSON."""
    return value if value is None or isinstance(value, str | int | float) else orjson.dumps(value).decode()


def _stored(row: Sequence[Any]) -> StoredEvent:
    # Sources and event types are a handful of strings: one copy each, not one per event of a
    # 200,000-event window.
    return StoredEvent(int(row[0]), sys.intern(row[1]), sys.intern(row[2]), float(row[3]), bytes(row[4]),
                       bytes(row[5]))


def _stub(row: Sequence[Any]) -> StoredEvent:
    """An event without its key and body (``b""``: one shared object), read later by the one who
    needs them (``Journal.with_bodies``): a 200,000-event window of the warehouse is ~25 MB so,
    against ~140 MB with the bodies."""
    return StoredEvent(int(row[0]), sys.intern(row[1]), sys.intern(row[2]), float(row[3]), b"", b"")


# Bumped when a table changes shape; written into meta by the schema files.
SCHEMA_VERSION = "7"
# Versions this code upgrades in place: the schema files add what is missing (IF NOT EXISTS), and
# ``_upgrade`` the columns version 5 added to existing tables.
UPGRADABLE = ("2", "3", "4", "5", "6")


# SQLite page cache per connection of a process that does not ingest (the ingest process:
# DEFAULT_CACHE_MB).
# Such a process reads the log once, front to back, and the OS keeps the file's pages: two 64 MB
# caches (writer and reader) only filled up, and with 8 MB the deliver process's peak while
# draining a backlog fell by ~60 MB at the same speed (docs/benchmarks.md).
BACKGROUND_CACHE_MB = 8


class JournalClosed(ConnectionError):
    """A read after ``Journal.close`` (a thread that outlived its process's shutdown): refused rather
    than a new connection nobody closes. A ``ConnectionError``: what was reading retries later."""


class JournalUnavailable(Exception):
    """The journal cannot be opened (bad URL, server unreachable, wrong schema): one line for the operator."""


def redacted(url: str) -> str:
    """A database URL as it may be shown: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Journal:
    def __init__(self, database_url: str, relaxed_progress: bool = False) -> None:
        """``relaxed_progress``: for processes that do not ingest; their commits of delivery
        progress do not wait for the disk (see Writer), the emails' guard still does, and their
        SQLite connections keep a small page cache (they read the log once, front to back)."""
        self.url = database_url
        try:
            cache_mb = BACKGROUND_CACHE_MB if relaxed_progress else DEFAULT_CACHE_MB
            self.dialect: Dialect = dialect_for(database_url, cache_mb)
            self.q = self.dialect.sql
            self._apply_schema()
            self._writer = Writer(self.dialect, relaxed=relaxed_progress)
        except JournalUnavailable:
            raise
        except Exception as exc:  # connecting and the schema: whatever stops them, say it in one line
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise JournalUnavailable(f"cannot open the journal at {redacted(database_url)}: {detail}") from exc
        self._reader: Any = None  # opened on first use: a read outside the writer's transactions
        self._reader_lock = threading.Lock()
        self._closed = False

    # -- plumbing -------------------------------------------------------------------------
    def _apply_schema(self) -> None:
        conn = self.dialect.connect()
        try:
            if self.dialect.name == "postgres":
                conn.execute("SELECT pg_advisory_lock(7281)")  # two processes starting at once
            self._upgrade(conn)
            for statement in self.dialect.schema().split(";"):
                if statement.strip():
                    conn.execute(statement)
            version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
            if version in UPGRADABLE:
                conn.execute(self.dialect.sql("UPDATE meta SET value = ? WHERE key = 'schema_version'"),
                             (SCHEMA_VERSION,))
                version = SCHEMA_VERSION
            if version != SCHEMA_VERSION:
                raise JournalUnavailable(f"the journal at {redacted(self.url)} has schema version {version}; this "
                                         f"sgbridge needs {SCHEMA_VERSION}. Point SGBRIDGE_DATABASE_URL at a new "
                                         "database")
            if self.dialect.name == "postgres":
                conn.execute("SELECT pg_advisory_unlock(7281)")
        finally:
            conn.close()

    def _upgrade(self, conn: Any) -> None:
        """Version 5: each event's stream (journal/streams.py), and the stream each cursor reads.
        Adding a column with a constant default rewrites no row (SQLite, PostgreSQL 11+); only the
        Segment-born events are updated. The schema files then build the index."""
        if not self._has_table(conn, "events") or self._has_column(conn, "events", "stream"):
            return
        segment = sorted(SEGMENT_SOURCES)
        marks = ", ".join("?" * len(segment))
        conn.execute("BEGIN")
        try:
            conn.execute(f"ALTER TABLE events ADD COLUMN stream {self._small_int} NOT NULL DEFAULT {streams.SENDGRID}")
            conn.execute(self.q(f"UPDATE events SET stream = ? WHERE source IN ({marks})"),
                         (streams.SEGMENT, *segment))
            if not self._has_column(conn, "cursors", "stream"):
                conn.execute(f"ALTER TABLE cursors ADD COLUMN stream {self._small_int}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @property
    def _small_int(self) -> str:
        return "SMALLINT" if self.dialect.name == "postgres" else "INTEGER"

    def _has_table(self, conn: Any, table: str) -> bool:
        if self.dialect.name == "postgres":
            return conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() \
            is not None

    def _has_column(self, conn: Any, table: str, column: str) -> bool:
        if self.dialect.name == "postgres":
            return conn.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                                "AND table_name = %s AND column_name = %s", (table, column)).fetchone() is not None
        return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))

    def _submit(self, fn: Callable[[Any], T], appends: bool = False, durable: bool = False) -> Future[T]:
        return self._writer.submit(fn, appends=appends, durable=durable)

    async def run(self, fn: Callable[[Any], T], appends: bool = False, durable: bool = False) -> T:
        return await asyncio.wrap_future(self._submit(fn, appends, durable))

    def run_sync(self, fn: Callable[[Any], T]) -> T:
        return self._submit(fn).result()

    def close(self) -> None:
        self._writer.close()
        with self._reader_lock:
            self._closed = True
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _read(self, fn: Callable[[Any], T]) -> T:
        """``fn`` on the reader connection, outside the writer's transactions (SQLite's WAL lets
        readers run beside another process's writer)."""
        with self._reader_lock:
            if self._reader is None:
                if self._closed:
                    raise JournalClosed("the journal is closed")
                self._reader = self.dialect.connect()
            try:
                return fn(self._reader)
            except Exception:  # a dropped connection (a database restart): a new one next time
                with contextlib.suppress(Exception):
                    self._reader.close()
                self._reader = None
                raise

    def latest_seq(self) -> int:
        """The newest event's seq, read without the write lock: how delivery processes notice new
        events cheaply."""
        row = self._read(lambda conn: conn.execute("SELECT MAX(seq) FROM events").fetchone())
        return int(row[0] or 0)

    def _claimed_up_to(self, conn: Any, destination: str, position: int) -> int:
        """The seq after which nothing is claimed yet: past the cursor and every window claimed."""
        top = conn.execute(self.q("SELECT MAX(seq_hi) FROM claims WHERE destination = ?"), (destination,)).fetchone()
        return max(position, int(top[0] or 0))

    def oldest_waiting(self, destination: str, stream: int | None = None) -> float | None:
        """When the oldest event not yet claimed by ``destination`` arrived (None: none waits),
        read without the write lock."""
        q = self.q
        of_stream, stream_args = ("stream = ? AND ", (stream,)) if stream is not None else ("", ())

        def job(conn: Any) -> float | None:
            row = conn.execute(q("SELECT position FROM cursors WHERE destination = ?"), (destination,)).fetchone()
            start = self._claimed_up_to(conn, destination, int(row[0]) if row else 0)
            first = conn.execute(q(f"SELECT received_at FROM events WHERE {of_stream}seq > ? ORDER BY seq LIMIT 1"),
                                 (*stream_args, start)).fetchone()
            return float(first[0]) if first else None

        return self._read(job)

    def with_bodies(self, events: Sequence[StoredEvent], stream: int | None = None) -> list[StoredEvent]:
        """The events with their key and body, for those claimed without them (``bodies=False``),
        read on the reader connection in one range scan (blocking: call it from a worker thread).
        Events of a claimed window stay in the log until their destination's cursor passes them
        (journal/housekeeping.py), so each one is there."""
        stubs = {e.seq: e for e in events if not e.body}
        if not stubs:
            return list(events)
        of_stream, stream_args = ("stream = ? AND ", (stream,)) if stream is not None else ("", ())
        query = self.q(f"SELECT seq, COALESCE(id_key, fp_key), body FROM events WHERE {of_stream}"
                       "seq BETWEEN ? AND ?")

        def job(conn: Any) -> dict[int, StoredEvent]:
            found: dict[int, StoredEvent] = {}
            for seq, key, body in conn.execute(query, (*stream_args, min(stubs), max(stubs))):
                stub = stubs.get(seq)
                if stub is not None:
                    found[seq] = StoredEvent(stub.seq, stub.source, stub.event_type, stub.received_at,
                                             bytes(key), bytes(body))
            return found

        found = self._read(job)
        if len(found) < len(stubs):
            missing = sorted(set(stubs) - set(found))
            raise LookupError(f"{len(missing)} claimed events are not in the journal (first: seq {missing[0]})")
        return [found.get(e.seq, e) for e in events]

    @property
    def commits(self) -> int:
        return self._writer.commits

    # -- inbound --------------------------------------------------------------------------
    async def append(self, request: InboundRequest) -> AppendResult:
        """Store a request and its events; returns only after the commit is durable."""
        return await asyncio.wrap_future(self._submit(self._append_job(request), appends=True))

    def append_sync(self, request: InboundRequest) -> AppendResult:
        """``append`` from a thread that is not the event loop's (a poller in a worker thread)."""
        return self._submit(self._append_job(request), appends=True).result()

    def _append_job(self, request: InboundRequest) -> Callable[[Any], AppendResult]:
        dialect = self.dialect

        def job(conn: Any) -> AppendResult:
            request_id = dialect.insert_returning_id(
                conn,
                "INSERT INTO requests (source, received_at, event_count, body_bytes) VALUES (?,?,?,?)",
                (request.source, request.received_at, len(request.events), request.body_bytes),
            )
            rows = [
                (request_id, e.source, request.received_at, e.event_type, e.id_key, e.fp_key, e.body,
                 stream_of(e.source))
                for e in request.events
            ]
            accepted = dialect.insert_events(conn, rows) if rows else 0
            return AppendResult(accepted, len(rows) - accepted, request_id)

        return job

    # -- delivery: windows over the log ---------------------------------------------------
    async def claim_window(self, destination: str, owner: str, limit: int, lease: float,
                           stream: int | None = None, exclusive: bool = False,
                           bodies: bool = True) -> Window | None:
        """The next window of the log for ``destination``: up to ``limit`` events after its cursor
        and the windows in flight, of ``stream`` only (journal/streams.py; None: every event).

        ``bodies``: False for a destination that reads its events' bodies a chunk at a time
        (``with_bodies``; the warehouse): the window's events come without key and body.

        ``exclusive``: one window in flight at a time across every process (the workflows' intake,
        whose windows must be applied in log order): none while another one's claim is unfinished
        and its lease runs (the cursor row's lock makes the check and the claim one step)."""
        q, lock = self.q, " FOR UPDATE" if self.dialect.name == "postgres" else ""
        of_stream, stream_args = ("stream = ? AND ", (stream,)) if stream is not None else ("", ())
        fields, made = (_EVENT_FIELDS, _stored) if bodies else (_STUB_FIELDS, _stub)

        def job(conn: Any) -> Window | None:
            now = time.time()
            conn.execute(q("INSERT INTO cursors (destination, position, stream) VALUES (?, 0, ?) ON CONFLICT "
                           "(destination) DO UPDATE SET stream = excluded.stream WHERE cursors.stream IS NULL "
                           "OR cursors.stream <> excluded.stream"), (destination, stream))
            position = int(conn.execute(q(f"SELECT position FROM cursors WHERE destination = ?{lock}"),
                                        (destination,)).fetchone()[0])
            stale = conn.execute(q(
                "SELECT id, seq_lo, seq_hi FROM claims WHERE destination = ? AND done = 0 AND expires_at < ? "
                "ORDER BY seq_lo LIMIT 1"), (destination, now)).fetchone()
            if stale:  # its owner died or stalled: take it over; deterministic ids make a resend safe
                claim_id, lo, hi = int(stale[0]), int(stale[1]), int(stale[2])
                conn.execute(q("UPDATE claims SET owner = ?, expires_at = ? WHERE id = ?"),
                             (owner, now + lease, claim_id))
                # Row by row into StoredEvents (not fetchall): a window's rows are not held twice.
                rows = conn.execute(q(f"SELECT {fields} FROM events WHERE {of_stream}seq BETWEEN ? AND ? "
                                      "ORDER BY seq"), (*stream_args, lo, hi))
                return Window(claim_id, destination, lo, hi, [made(r) for r in rows])
            if exclusive and conn.execute(q("SELECT 1 FROM claims WHERE destination = ? AND done = 0 LIMIT 1"),
                                          (destination,)).fetchone() is not None:
                return None  # another window is in flight (an expired one was taken over above)
            start = self._claimed_up_to(conn, destination, position)
            events = [made(r) for r in conn.execute(
                q(f"SELECT {fields} FROM events WHERE {of_stream}seq > ? ORDER BY seq LIMIT ?"),
                (*stream_args, start, limit))]
            if not events:
                if stream is not None and start == position:
                    # Nothing of its stream after the cursor, nothing in flight: the cursor passes
                    # over the other stream's events (in one statement: one snapshot of the log).
                    conn.execute(q("UPDATE cursors SET position = (SELECT MAX(seq) FROM events) WHERE destination = ? "
                                   "AND position < (SELECT MAX(seq) FROM events) AND NOT EXISTS "
                                   "(SELECT 1 FROM events WHERE stream = ? AND seq > ?)"),
                                 (destination, stream, position))
                return None
            hi = events[-1].seq
            claim_id = self.dialect.insert_returning_id(
                conn, "INSERT INTO claims (destination, seq_lo, seq_hi, owner, expires_at) VALUES (?,?,?,?,?)",
                (destination, start + 1, hi, owner, now + lease))
            return Window(claim_id, destination, start + 1, hi, events)

        return await self.run(job)

    async def extend_claim(self, claim_id: int, lease: float, last_error: str | None = None,
                           next_attempt_at: float | None = None) -> None:
        q = self.q

        def job(conn: Any) -> None:
            conn.execute(q("UPDATE claims SET expires_at = ?, attempts = attempts + 1, last_error = ?, "
                           "next_attempt_at = ? WHERE id = ?"),
                         (time.time() + lease, _text(last_error), next_attempt_at, claim_id))

        await self.run(job)

    async def renew_claim(self, claim_id: int, owner: str, lease: float) -> bool:
        """Keep a claim while its window is still being sent; False if it was taken over."""
        q = self.q

        def job(conn: Any) -> bool:
            cursor = conn.execute(q("UPDATE claims SET expires_at = ? WHERE id = ? AND owner = ? AND done = 0"),
                                  (time.time() + lease, claim_id, owner))
            return bool(cursor.rowcount)

        return await self.run(job)

    async def record_attempts(self, attempts: Sequence[AttemptRecord]) -> None:
        rows = [(a.destination, a.started_at, a.duration_ms, _text(a.url), a.status_code, a.outcome,
                 _text(a.detail[:2000]),
                 len(a.seqs), min(a.seqs), max(a.seqs), orjson.dumps(a.seqs).decode()) for a in attempts if a.seqs]

        def job(conn: Any) -> None:
            self.dialect.executemany(conn, (
                "INSERT INTO attempts (destination, started_at, duration_ms, url, status_code, outcome, detail,"
                " event_count, seq_lo, seq_hi, seqs) VALUES (?,?,?,?,?,?,?,?,?,?,?)"), rows)

        if rows:
            await self.run(job)

    def _upsert_outcomes(self, conn: Any, destination: str, records: Sequence[OutcomeRecord],
                         attempts_delta: int = 0) -> None:
        now = time.time()
        self.dialect.executemany(conn, (
            "INSERT INTO outcomes (destination, seq, status, reason, status_code, attempts, updated_at)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT (destination, seq) DO UPDATE SET status = excluded.status,"
            " reason = excluded.reason, status_code = excluded.status_code, next_attempt_at = NULL,"
            " attempts = outcomes.attempts + excluded.attempts, updated_at = excluded.updated_at"),
            [(destination, r.seq, r.status, _text(r.reason), r.status_code, attempts_delta, now) for r in records])

    async def complete_window(self, window: Window, records: Sequence[OutcomeRecord]) -> int:
        """Record the window's exceptions, mark it done and move the cursor over finished windows."""
        q, lock, dest = self.q, " FOR UPDATE" if self.dialect.name == "postgres" else "", window.destination

        def job(conn: Any) -> int:
            self._upsert_outcomes(conn, dest, records)
            conn.execute(q("UPDATE claims SET done = 1 WHERE id = ?"), (window.claim_id,))
            position = int(conn.execute(q(f"SELECT position FROM cursors WHERE destination = ?{lock}"),
                                        (dest,)).fetchone()[0])
            while True:
                nxt = conn.execute(q("SELECT id, seq_hi FROM claims WHERE destination = ? AND done = 1 AND seq_lo = ?"),
                                   (dest, position + 1)).fetchone()
                if not nxt:
                    break
                conn.execute(q("DELETE FROM claims WHERE id = ?"), (nxt[0],))
                position = int(nxt[1])
            conn.execute(q("UPDATE cursors SET position = ? WHERE destination = ?"), (position, dest))
            return position

        return await self.run(job)

    def release_claims(self, destinations: Sequence[str]) -> None:
        """On SQLite one process runs each destination: its claims left by a crashed run can be retaken at once."""
        q = self.q

        def job(conn: Any) -> None:
            for name in destinations:
                conn.execute(q("UPDATE claims SET expires_at = 0 WHERE done = 0 AND destination = ?"), (name,))

        self.run_sync(job)

    # -- delivery: dead-letter replays ----------------------------------------------------
    async def claim_replays(self, destination: str, limit: int, lease: float) -> Window | None:
        q = self.q
        skip = " FOR UPDATE OF o SKIP LOCKED" if self.dialect.name == "postgres" else ""

        def job(conn: Any) -> Window | None:
            now = time.time()
            rows = conn.execute(q(
                "SELECT o.id, e.seq, e.source, e.event_type, e.received_at, COALESCE(e.id_key, e.fp_key), e.body "
                "FROM outcomes o JOIN events e ON e.seq = o.seq WHERE o.destination = ? AND "
                "((o.status = ? AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= ?)) OR "
                "(o.status = 'replaying' AND o.next_attempt_at <= ?)) ORDER BY o.seq LIMIT ?" + skip),
                (destination, oc.REPLAY_REQUESTED, now, now, limit)).fetchall()
            if not rows:
                return None
            ids = [int(r[0]) for r in rows]
            self.dialect.executemany(
                conn, "UPDATE outcomes SET status = 'replaying', next_attempt_at = ? WHERE id = ?",
                [(now + lease, i) for i in ids])
            events = [_stored(r[1:]) for r in rows]
            return Window(0, destination, events[0].seq, events[-1].seq, events, ids)

        return await self.run(job)

    async def settle_replays(self, destination: str, records: Sequence[OutcomeRecord],
                             retry_at: dict[int, float]) -> None:
        """Final outcomes of replayed events; those in ``retry_at`` wait and go again."""

        def job(conn: Any) -> None:
            self._upsert_outcomes(conn, destination, [r for r in records if r.seq not in retry_at], 1)
            self.dialect.executemany(
                conn, "UPDATE outcomes SET status = ?, next_attempt_at = ?, attempts = attempts + 1 "
                "WHERE destination = ? AND seq = ?",
                [(oc.REPLAY_REQUESTED, at, destination, seq) for seq, at in retry_at.items()])

        await self.run(job)

    # -- emails: never twice ---------------------------------------------------------------
    async def mail_begin(self, destination: str, keys: Sequence[str]) -> dict[str, str]:
        """Mark ``keys`` as being sent (committed before any request); earlier states by key.

        A key still ``sending`` from an earlier attempt means that attempt never finished (the
        process died): it is reported ``unknown``.
        """
        q = self.q

        def job(conn: Any) -> dict[str, str]:
            earlier: dict[str, str] = {}
            now = time.time()
            for given in dict.fromkeys(keys):
                key = str(_text(given))  # as stored; the answer is keyed as the caller gave it
                row = conn.execute(q("SELECT state FROM mail_sends WHERE destination = ? AND message_key = ?"),
                                   (destination, key)).fetchone()
                if row is None:
                    conn.execute(q("INSERT INTO mail_sends (destination, message_key, state, updated_at) "
                                   "VALUES (?, ?, 'sending', ?)"), (destination, key, now))
                    continue
                state = "unknown" if row[0] == "sending" else str(row[0])
                earlier[given] = state
                if state in ("unsent", "unknown"):
                    conn.execute(q("UPDATE mail_sends SET state = 'sending', updated_at = ? WHERE destination = ? "
                                   "AND message_key = ?"), (now, destination, key))
            return earlier

        return await self.run(job, durable=True) if keys else {}  # on disk before any email goes out

    async def mail_finish(self, destination: str, outcomes: dict[str, tuple[str, str | None]]) -> None:
        """key -> (state, sg_message_id or detail) after the requests."""
        rows = [(state, _text(value) if state == "sent" else None, None if state == "sent" else _text(value),
                 time.time(), destination, _text(key)) for key, (state, value) in outcomes.items()]

        def job(conn: Any) -> None:
            self.dialect.executemany(conn, "UPDATE mail_sends SET state = ?, sg_message_id = ?, detail = ?, "
                                     "updated_at = ? WHERE destination = ? AND message_key = ?", rows)

        if rows:
            await self.run(job, durable=True)

    # -- operations (CLI, dashboard) ------------------------------------------------------
    def dead_letters(self, destination: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        q = self.q
        where, params = "o.status IN (?, ?)", list(DEAD)
        if destination:
            where += " AND o.destination = ?"
            params.append(destination)

        def job(conn: Any) -> list[dict[str, Any]]:
            rows = conn.execute(q(
                "SELECT o.id, o.destination, o.seq, o.reason, o.status_code, o.attempts, o.updated_at, e.body,"
                " e.source, o.status FROM outcomes o LEFT JOIN events e ON e.seq = o.seq"
                f" WHERE {where} ORDER BY o.id LIMIT ?"),
                (*params, limit)).fetchall()
            out = []
            for r in rows:
                raw = bytes(r[7]) if r[7] is not None else b"{}"
                parsed, unreadable = load_for_display(raw)
                body = parsed if isinstance(parsed, dict) and not unreadable else top_level_fields(raw)
                row = {"id": int(r[0]), "destination": r[1], "seq": int(r[2]), "reason": r[3],
                       "status_code": r[4], "attempts": int(r[5]), "updated_at": float(r[6]),
                       "source": r[8], "status": r[9], "event": _shown(body.get("event") or body.get("type")),
                       "sg_event_id": _shown(body.get("sg_event_id") or body.get("messageId"))}
                if unreadable:
                    row["event_unreadable"] = unreadable
                out.append(row)
            return out

        return self.run_sync(job)

    def request_replay(self, ids: Iterable[int] | None) -> int:
        """Queue dead letters for another try (all of them when ``ids`` is None)."""
        q = self.q
        id_list = None if ids is None else list(ids)

        def job(conn: Any) -> int:
            base = "UPDATE outcomes SET status = ?, next_attempt_at = NULL, updated_at = ? WHERE status IN (?, ?)"
            if id_list is None:
                return int(conn.execute(q(base), (oc.REPLAY_REQUESTED, time.time(), *DEAD)).rowcount)
            total = 0
            for i in id_list:
                total += int(conn.execute(q(base + " AND id = ?"),
                                          (oc.REPLAY_REQUESTED, time.time(), *DEAD, i)).rowcount)
            return total

        return self.run_sync(job)

    def stats(self, count_events: bool = False) -> dict[str, Any]:
        """Cursors and outcome counts; ``count_events`` adds an exact count (a full scan)."""

        def job(conn: Any) -> dict[str, Any]:
            max_seq = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0
            extra = {"events": int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])} if count_events else {}
            cursors = {r[0]: int(r[1]) for r in conn.execute("SELECT destination, position FROM cursors")}
            by_status: dict[str, int] = {}
            for dest, status, count in conn.execute(
                    "SELECT destination, status, COUNT(*) FROM outcomes GROUP BY destination, status"):
                by_status[f"{dest}:{status}"] = int(count)
            return {"max_seq": int(max_seq), **extra, "cursors": cursors, "outcomes": by_status}

        return self.run_sync(job)

    async def stats_async(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.stats)
