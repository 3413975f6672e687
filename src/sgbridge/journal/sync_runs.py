"""The run history of object syncs, kept in the journal database beside everything else.

A scheduled run claims its slot (``floor(time / interval)``) with an insert that a unique index
lets only one process win, so several ``serve`` processes on one PostgreSQL database run each
sync once. A run beats while it works (progress, and a timer); a run whose process died stops
beating, is reported as ``interrupted``, and gives its slot up to the next process that asks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from sgbridge.journal.journal import Journal

RUNNING = "running"
INTERRUPTED = "interrupted"
_COLUMNS = "id, source, trigger, slot, owner, status, started_at, heartbeat_at, finished_at, collections, error"


@dataclass(slots=True)
class SyncRun:
    id: int
    source: str
    trigger: str
    slot: int | None
    owner: str
    status: str
    started_at: float
    heartbeat_at: float
    finished_at: float | None
    collections: list[dict[str, Any]]
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "trigger": self.trigger, "status": self.status,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "duration_seconds": None if self.finished_at is None else round(self.finished_at - self.started_at, 3),
                "collections": self.collections, "error": self.error, "owner": self.owner}


def _run(row: Any, stale_after: float, now: float) -> SyncRun:
    run = SyncRun(int(row[0]), row[1], row[2], None if row[3] is None else int(row[3]), row[4], row[5],
                  float(row[6]), float(row[7]), None if row[8] is None else float(row[8]), orjson.loads(row[9]),
                  row[10])
    if run.status == RUNNING and now - run.heartbeat_at > stale_after:
        run.status = INTERRUPTED  # its process stopped beating: killed, or the machine went down
    return run


class SyncRuns:
    """Claims, progress and history of sync runs (blocking calls: syncs run in worker threads)."""

    def __init__(self, journal: Journal, stale_after_seconds: float = 300.0) -> None:
        self.journal = journal
        self.q = journal.dialect.sql
        self.stale_after = stale_after_seconds

    def start(self, source: str, owner: str, slot: int | None = None) -> int | None:
        """A new run; None when the slot is already taken (another process runs this sync)."""
        trigger = "manual" if slot is None else "schedule"
        now = time.time()

        def job(conn: Any) -> int | None:
            if slot is not None:
                # The slot's run stopped beating (its process was killed): it gives the slot up, so this
                # process runs the sync now instead of the schedule skipping a whole interval.
                conn.execute(self.q(
                    "UPDATE sync_runs SET status = ?, slot = NULL, finished_at = heartbeat_at, error = ? "
                    "WHERE source = ? AND slot = ? AND status = ? AND heartbeat_at < ?"),
                    (INTERRUPTED, "its process stopped (killed or crashed); the slot was run again",
                     source, slot, RUNNING, now - self.stale_after))
            row = conn.execute(self.q(
                "INSERT INTO sync_runs (source, trigger, slot, owner, status, started_at, heartbeat_at, collections) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, '[]') ON CONFLICT DO NOTHING RETURNING id"),
                (source, trigger, slot, owner, RUNNING, now, now)).fetchone()
            return None if row is None else int(row[0])

        return self.journal.run_sync(job)

    def beat(self, run_id: int, collections: list[dict[str, Any]]) -> None:
        payload = orjson.dumps(collections).decode()
        self.journal.run_sync(lambda conn: conn.execute(
            self.q("UPDATE sync_runs SET heartbeat_at = ?, collections = ? WHERE id = ?"),
            (time.time(), payload, run_id)))

    def finish(self, run_id: int, status: str, collections: list[dict[str, Any]], error: str | None) -> None:
        now = time.time()
        payload = orjson.dumps(collections).decode()
        self.journal.run_sync(lambda conn: conn.execute(
            self.q("UPDATE sync_runs SET status = ?, heartbeat_at = ?, finished_at = ?, collections = ?, error = ? "
                   "WHERE id = ?"), (status, now, now, payload, error, run_id)))

    def history(self, source: str | None = None, limit: int = 20, prefix: str | None = None) -> list[SyncRun]:
        """The latest runs (of ``source``, or of the sources starting with ``prefix``), newest first."""
        where, params = ("WHERE source = ? ", (source, limit)) if source else \
            ("WHERE source LIKE ? ", (prefix + "%", limit)) if prefix else ("", (limit,))
        rows = self.journal.run_sync(lambda conn: conn.execute(self.q(
            f"SELECT {_COLUMNS} FROM sync_runs {where}ORDER BY started_at DESC, id DESC LIMIT ?"), params).fetchall())
        now = time.time()
        return [_run(row, self.stale_after, now) for row in rows]

    def get(self, run_id: int) -> SyncRun | None:
        row = self.journal.run_sync(lambda conn: conn.execute(
            self.q(f"SELECT {_COLUMNS} FROM sync_runs WHERE id = ?"), (run_id,)).fetchone())
        return None if row is None else _run(row, self.stale_after, time.time())
