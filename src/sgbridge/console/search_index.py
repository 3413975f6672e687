"""Search by email, user and SendGrid message: an index the web role keeps in a SQLite file of its own.

The journal's ``events`` table is indexed only by ``seq`` and by its dedup keys; adding indexes on
what the console searches would cost every ingested event. Instead the web role reads the log
after its own position (as a destination does, by ``seq``: the ingest writer never waits for a
reader in WAL mode, nor on PostgreSQL) and writes ``(kind, value, seq)`` rows into a separate
SQLite file, so its writes never take the journal's write lock. A search is one index range.
The index trails the log by the time one batch takes (about a second); it is rebuilt from the
log if the file is lost, and rows of events pruned from the log are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from sgbridge.journal import Journal

log = logging.getLogger(__name__)
T = TypeVar("T")

KINDS = ("email", "user", "message")
BATCH = 5_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (kind TEXT NOT NULL, value TEXT NOT NULL, seq INTEGER NOT NULL,
                                 PRIMARY KEY (kind, value, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS keys_seq ON keys (seq);
CREATE TABLE IF NOT EXISTS position (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,
                                     journal TEXT NOT NULL);
"""


def keys_of(body: bytes) -> list[tuple[str, str]]:
    """The (kind, value) pairs an event is found by: its email (lowercased), its userId and
    anonymousId, and the SendGrid message it belongs to (sg_message_id up to its first dot)."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(event, dict):
        return []
    found: set[tuple[str, str]] = set()
    traits, context, properties = _object(event, "traits"), _object(event, "context"), _object(event, "properties")
    context_traits = _object(context, "traits")
    for email in (event.get("email"), traits.get("email"), context_traits.get("email"), properties.get("email")):
        if isinstance(email, str) and 0 < len(email) <= 320:
            found.add(("email", email.strip().lower()))
    for user in (event.get("userId"), event.get("anonymousId")):
        if isinstance(user, (str, int)) and not isinstance(user, bool) and 0 < len(str(user).strip()) <= 256:
            found.add(("user", str(user).strip()))  # as a search reads it
    message = event.get("sg_message_id") or properties.get("sg_message_id")
    if isinstance(message, str) and message:
        found.add(("message", message.split(".", 1)[0][:256]))
    return sorted(found)


def _object(parent: dict[str, Any], name: str) -> dict[str, Any]:
    value = parent.get(name)
    return value if isinstance(value, dict) else {}


def default_path(database_url: str) -> str:
    if database_url in ("sqlite://", "sqlite:///:memory:", ":memory:"):
        return ":memory:"  # a journal in memory: its index too
    if database_url.startswith("sqlite:///"):
        journal = Path(database_url.removeprefix("sqlite:///"))
        return str(journal.with_name(journal.stem + "-search.db"))
    return "sgbridge-search.db"


class SearchIndex:
    def __init__(self, journal: Journal, path: str, identity: str) -> None:
        self.journal = journal
        self.path = path
        self.identity = identity  # which journal this index is of (a file moved to another: rebuilt)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # the indexer's
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=OFF")  # rebuilt from the log if a crash loses it
        self._conn.executescript(_SCHEMA)
        row = self._conn.execute("SELECT seq, journal FROM position").fetchone()
        if row is not None and row[1] != identity:
            self._conn.execute("DELETE FROM keys")
            self._conn.execute("DELETE FROM position")
            row = None
        self.position = int(row[0]) if row else 0
        # Searches read through a connection of their own; they run on the index's one thread, so a
        # search may wait for the batch being written (a few tens of milliseconds).
        self._reader = self._conn if path == ":memory:" else sqlite3.connect(path, check_same_thread=False)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        # One thread does everything with the index's connections, closing them included: a close
        # can never meet a write or a read still under way in another thread.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sgbridge-search-index")

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._in_thread(self._close)
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        if self._reader is not self._conn:
            self._reader.close()
        self._conn.close()

    async def _run(self) -> None:
        pruned_at = 0.0
        while True:
            try:
                taken = await self.catch_up_once()
                if time.monotonic() - pruned_at > 600:
                    pruned_at = time.monotonic()
                    await self._prune()
            except Exception:
                log.exception("search index: reading the log failed; trying again")
                taken = 0
            await asyncio.sleep(0.05 if taken >= BATCH else 1.0)

    async def catch_up_once(self) -> int:
        """Index the next batch of events after the position; how many events it read."""
        async with self._lock:
            after = self.position
            rows = await self.journal.run(lambda conn: conn.execute(self.journal.q(
                "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?"), (after, BATCH)).fetchall())
            if not rows:
                return 0
            pairs = [(kind, value, int(seq)) for seq, body in rows for kind, value in keys_of(bytes(body))]
            last = int(rows[-1][0])
            await self._in_thread(self._write, pairs, last)
            self.position = last
            return len(rows)

    def _write(self, pairs: list[tuple[str, str, int]], last: int) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO keys (kind, value, seq) VALUES (?, ?, ?)", pairs)
        conn.execute("INSERT INTO position (id, seq, journal) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE "
                     "SET seq = excluded.seq, journal = excluded.journal", (last, self.identity))
        conn.execute("COMMIT")

    async def _prune(self) -> None:
        oldest = await self.journal.run(lambda conn: conn.execute("SELECT MIN(seq) FROM events").fetchone()[0])
        if oldest is not None:
            await self._in_thread(self._conn.execute, "DELETE FROM keys WHERE seq < ?", (int(oldest),))

    async def seqs(self, kind: str, value: str, *, before: int | None = None, limit: int = 50) -> list[int]:
        """Newest first: the seqs of events with this key (below ``before``)."""
        value = value.strip().lower() if kind == "email" else value.strip()
        if kind == "message":
            value = value.split(".", 1)[0][:256]  # as keys_of stores it

        def read() -> list[int]:
            rows = self._reader.execute(
                "SELECT seq FROM keys WHERE kind = ? AND value = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (kind, value, before if before is not None else 2**62, limit)).fetchall()
            return [int(r[0]) for r in rows]

        return await self._in_thread(read)

    async def status(self) -> dict[str, Any]:
        top = await self.journal.run(lambda conn: conn.execute("SELECT MAX(seq) FROM events").fetchone()[0])
        return {"position": self.position, "behind": max(0, int(top or 0) - self.position)}
