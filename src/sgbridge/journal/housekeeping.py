"""Pruning: the log keeps events for the dedupe window (and tracing), not forever.

An event is removed only when the cursor of every destination reading its stream has passed
it, it is older than the retention (never shorter than the dedupe window), and it is not a dead
letter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sgbridge.journal import streams
from sgbridge.journal.journal import Journal
from sgbridge.outcomes import HELD, REJECTED, REPLAY_REQUESTED
from sgbridge.settings import IngestSettings

CHUNK = 10_000


async def prune(journal: Journal, ingest: IngestSettings, destinations: Sequence[str],
                now: float | None = None) -> int:
    cutoff = (now or time.time()) - max(ingest.retention_seconds, ingest.dedupe_window_seconds)
    q = journal.q

    def job(conn: Any) -> int:
        first = conn.execute("SELECT MIN(seq) FROM events").fetchone()[0]
        if first is None:
            return 0
        # Each stream's events wait for the cursors of the destinations reading it (journal/streams.py);
        # a destination that has not claimed yet, or whose stream is not known, holds back both.
        limits = dict.fromkeys(streams.NAMES, int(first) + CHUNK)
        for name in destinations:
            row = conn.execute(q("SELECT position, stream FROM cursors WHERE destination = ?"), (name,)).fetchone()
            position, stream = (int(row[0]), row[1]) if row else (0, None)
            for each in limits:
                if stream is None or int(stream) == each:
                    limits[each] = min(limits[each], position)
        removed = 0
        for stream, limit in limits.items():
            removed += conn.execute(q(
                "DELETE FROM events WHERE stream = ? AND seq <= ? AND received_at < ? AND seq NOT IN "
                "(SELECT seq FROM outcomes WHERE status IN (?, ?, ?, 'replaying'))"),
                (stream, limit, cutoff, REJECTED, HELD, REPLAY_REQUESTED)).rowcount
        conn.execute(q("DELETE FROM requests WHERE received_at < ? AND id < "
                       "(SELECT COALESCE(MIN(request_id), 0) FROM events)"), (cutoff,))
        conn.execute(q("DELETE FROM attempts WHERE started_at < ?"), (cutoff,))
        conn.execute(q("DELETE FROM outcomes WHERE updated_at < ? AND status NOT IN (?, ?, ?, 'replaying')"),
                     (cutoff, REJECTED, HELD, REPLAY_REQUESTED))
        return int(removed)

    total = 0
    while True:  # chunks keep each transaction short so ingestion is not held up
        removed = await journal.run(job)
        total += removed
        if removed < CHUNK // 2:
            return total
