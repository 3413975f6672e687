"""Per-minute traffic of each source and destination, for the overview, kept in this process.

Built from the journal's ``requests`` (one row per inbound POST) and ``attempts`` (one row per
request a destination made) tables, read forward from the last row seen: each refresh reads only
what is new, so a page costs the same on a journal of a thousand events or of a billion. At start
it looks back ``MINUTES`` minutes (a binary search on the row id, which grows with time).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sgbridge.journal import Journal

MINUTES = 60
_READ = 50_000  # rows per read; a refresh reads at most _READS of them
_READS = 10
_SAMPLES = 400  # request durations kept per destination and minute (for p50/p99)


@dataclass
class Minute:
    events: int = 0  # in: events received; out: events carried by attempts that delivered
    requests: int = 0
    delivered: int = 0  # attempts
    retries: int = 0
    rejected: int = 0
    durations: list[float] = field(default_factory=list)  # of the requests, ms
    latencies: list[float] = field(default_factory=list)  # received → delivered, s (the request's first event)


def _first_id_since(conn: Any, journal: Journal, table: str, column: str, since: float) -> int:
    # Two statements: SQLite answers MIN or MAX alone from the key, both at once with a scan.
    first = conn.execute(f"SELECT MIN(id) FROM {table}").fetchone()[0]
    if first is None:
        return 0
    lo, hi = int(first), int(conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()[0]) + 1
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute(journal.q(f"SELECT {column} FROM {table} WHERE id >= ? ORDER BY id LIMIT 1"),
                           (mid,)).fetchone()
        if row is None or float(row[0]) >= since:
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


class Activity:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.inbound: dict[str, dict[int, Minute]] = defaultdict(dict)
        self.outbound: dict[str, dict[int, Minute]] = defaultdict(dict)
        self._last_request: int | None = None
        self._last_attempt: int | None = None
        self._refreshed = 0.0

    async def refresh(self, min_interval: float = 2.0) -> None:
        now = time.time()
        if now - self._refreshed < min_interval:
            return
        self._refreshed = now
        requests, attempts, received = await self.journal.run(lambda conn: self._read(conn, now))
        # Merged here, on the event loop, where pages read the tables.
        for _rid, source, at, count in requests:
            minute = self.inbound[str(source)].setdefault(int(float(at) // 60), Minute())
            minute.requests += 1
            minute.events += int(count)
        for _aid, destination, at, duration, outcome, count, seq_lo in attempts:
            minute = self.outbound[str(destination)].setdefault(int(float(at) // 60), Minute())
            minute.requests += 1
            if outcome == "delivered":
                minute.delivered += 1
                minute.events += int(count)
                first = received.get(int(seq_lo))
                if first is not None and len(minute.latencies) < _SAMPLES:
                    minute.latencies.append(max(0.0, float(at) + float(duration) / 1000 - first))
            elif outcome == "rejected":
                minute.rejected += 1
            else:
                minute.retries += 1
            if len(minute.durations) < _SAMPLES:
                minute.durations.append(float(duration))
        oldest = int(now // 60) - MINUTES
        for table in (*self.inbound.values(), *self.outbound.values()):
            for minute_key in [m for m in table if m < oldest]:
                del table[minute_key]

    def _read(self, conn: Any, now: float) -> tuple[list[Any], list[Any], dict[int, float]]:
        """The requests and attempts after the last seen (in the journal's thread)."""
        q = self.journal.q
        if self._last_request is None or self._last_attempt is None:
            self._last_request = _first_id_since(conn, self.journal, "requests", "received_at", now - MINUTES * 60)
            self._last_attempt = _first_id_since(conn, self.journal, "attempts", "started_at", now - MINUTES * 60)
        requests: list[Any] = []
        for _ in range(_READS):
            rows = conn.execute(q("SELECT id, source, received_at, event_count FROM requests WHERE id > ? "
                                  "ORDER BY id LIMIT ?"), (self._last_request, _READ)).fetchall()
            requests += rows
            if rows:
                self._last_request = int(rows[-1][0])
            if len(rows) < _READ:
                break
        attempts: list[Any] = []
        for _ in range(_READS):
            rows = conn.execute(q("SELECT id, destination, started_at, duration_ms, outcome, event_count, seq_lo "
                                  "FROM attempts WHERE id > ? ORDER BY id LIMIT ?"),
                                (self._last_attempt, _READ)).fetchall()
            attempts += rows
            if rows:
                self._last_attempt = int(rows[-1][0])
            if len(rows) < _READ:
                break
        # When the first event of each delivered request arrived (key look-ups, a few hundred at a time).
        wanted = sorted({int(a[6]) for a in attempts if a[4] == "delivered"})
        received: dict[int, float] = {}
        for lo in range(0, len(wanted), 500):
            chunk = wanted[lo:lo + 500]
            received.update((int(r[0]), float(r[1])) for r in conn.execute(q(
                f"SELECT seq, received_at FROM events WHERE seq IN ({', '.join('?' * len(chunk))})"), chunk))
        return requests, attempts, received

    def series(self, table: dict[int, Minute], now: float | None = None) -> list[tuple[int, Minute]]:
        """The last MINUTES minutes, oldest first, a Minute() for each minute without traffic."""
        current = int((time.time() if now is None else now) // 60)
        return [(m, table.get(m, Minute())) for m in range(current - MINUTES + 1, current + 1)]


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
