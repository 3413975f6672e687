"""What differs between SQLite and PostgreSQL: connecting, placeholders, the append lock.

Queries are written once with ``?`` placeholders; PostgreSQL gets them as ``%s``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse


class Connection(Protocol):
    def execute(self, sql: str, params: Any = ...) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


class Dialect:
    name = "abstract"

    def connect(self) -> Any:
        raise NotImplementedError

    def sql(self, query: str) -> str:
        return query

    def begin(self, conn: Any, with_append_lock: bool) -> None:
        raise NotImplementedError

    def set_durable(self, conn: Any, durable: bool) -> None:
        """Whether a commit waits until it is on disk (a power loss cannot undo it)."""
        raise NotImplementedError

    def schema(self) -> str:
        return (resources.files("sgbridge.journal") / "sql" / f"schema_{self.name}.sql").read_text()

    def insert_events(self, conn: Any, rows: list[tuple[Any, ...]]) -> int:
        """Insert event rows, skipping duplicates on either dedupe key; return how many went in."""
        raise NotImplementedError

    def executemany(self, conn: Any, query: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            conn.executemany(self.sql(query), rows)

    def insert_returning_id(self, conn: Any, query: str, params: tuple[Any, ...]) -> int:
        row = conn.execute(self.sql(query + " RETURNING id"), params).fetchone()
        return int(row[0])


_EVENT_COLUMNS = "(request_id, source, received_at, event_type, id_key, fp_key, body, stream)"


# SQLite page cache per connection, in MB: the ingest writer's dedupe indexes stay in it.
DEFAULT_CACHE_MB = 64


class SQLiteDialect(Dialect):
    name = "sqlite"

    def __init__(self, path: str, cache_mb: int = DEFAULT_CACHE_MB) -> None:
        self.path = path
        self.cache_mb = cache_mb

    def connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before we answer 2xx, even if the machine loses power.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        # Processes that only read the log front to back gain nothing from a large one (the OS
        # caches the file): they ask for less (journal.BACKGROUND_CACHE_MB).
        conn.execute(f"PRAGMA cache_size=-{int(self.cache_mb) * 1024}")
        return conn

    def begin(self, conn: Any, with_append_lock: bool) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def set_durable(self, conn: Any, durable: bool) -> None:
        # NORMAL in WAL mode: a commit survives the process being killed, not a power loss.
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")

    def insert_events(self, conn: Any, rows: list[tuple[Any, ...]]) -> int:
        before = conn.total_changes
        conn.executemany(f"INSERT OR IGNORE INTO events {_EVENT_COLUMNS} VALUES (?,?,?,?,?,?,?,?)", rows)
        return int(conn.total_changes - before)


# Any constant works; it only has to be the same in every process sharing the database.
_APPEND_LOCK_ID = 0x5367_6272_6964_6765 & 0x7FFF_FFFF_FFFF_FFFF


class PostgresDialect(Dialect):
    name = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url

    def connect(self) -> Any:
        import psycopg  # imported lazily: PostgreSQL support is an optional extra

        return psycopg.connect(self.url, autocommit=True)

    def sql(self, query: str) -> str:
        return query.replace("%", "%%").replace("?", "%s")

    def executemany(self, conn: Any, query: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with conn.cursor() as cur:
                cur.executemany(self.sql(query), rows)

    def begin(self, conn: Any, with_append_lock: bool) -> None:
        conn.execute("BEGIN")
        if with_append_lock:
            # Several processes append at once. Holding this lock until commit makes the order
            # of seq values the order of commits, so a reader that sees seq N has seen every
            # seq below N and a cursor can never skip a late commit.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK_ID,))

    def set_durable(self, conn: Any, durable: bool) -> None:
        conn.execute(f"SET synchronous_commit TO {'on' if durable else 'off'}")

    def insert_events(self, conn: Any, rows: list[tuple[Any, ...]]) -> int:
        inserted = 0
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO events {_EVENT_COLUMNS} VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                rows,
            )
            inserted = cur.rowcount
        return int(inserted)


def dialect_for(url: str, sqlite_cache_mb: int = DEFAULT_CACHE_MB) -> Dialect:
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDialect(url)
    if url.startswith("sqlite:///"):
        return SQLiteDialect(url[len("sqlite:///"):] or ":memory:", sqlite_cache_mb)
    if url == "sqlite://" or url == ":memory:":
        return SQLiteDialect(":memory:", sqlite_cache_mb)
    parsed = urlparse(url)
    raise ValueError(f"unsupported database URL scheme {parsed.scheme!r}: use sqlite:///PATH or postgresql://…")
