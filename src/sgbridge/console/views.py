"""What the console's pages read from the journal. Every list is keyset-paginated on an indexed
column (``seq``, ``id``), every look-up is by key: a page costs the same on a big journal."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import orjson

from sgbridge import outcomes as oc
from sgbridge.inbound.readable import load_for_display, top_level_fields
from sgbridge.inbound.segment import SEGMENT_SOURCES
from sgbridge.journal import Journal, streams
from sgbridge.journal.trace import find_seqs, trace
from sgbridge.journal.workflow_runs import DEAD_LETTER_PREFIX
from sgbridge.settings import Settings

DEAD = (oc.REJECTED, oc.HELD)


def summary_of(body: bytes) -> dict[str, Any]:
    """The few fields a list shows of an event (unreadable bodies shown as far as they go)."""
    parsed, unreadable = load_for_display(body)
    event = parsed if isinstance(parsed, dict) and not unreadable else top_level_fields(body)

    def text(*names: str) -> str:
        for name in names:
            value: Any = event
            for part in name.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                return str(value)[:200]
        return ""

    return {"event": text("event", "type"), "id": text("sg_event_id", "messageId"),
            "email": text("email", "traits.email", "context.traits.email", "properties.email"),
            "user_id": text("userId", "anonymousId")}


def consumers(settings: Settings) -> dict[str, Any]:
    """Which sources each destination reads (as `sgbridge events show`)."""
    consumes: dict[str, Any] = {}
    if any(settings.write_key_for(name) for name in settings.sources):
        consumes["segment"] = lambda source: source not in SEGMENT_SOURCES
    consumes.update({name: lambda source: source in SEGMENT_SOURCES for name in settings.actions})
    if settings.warehouse.enabled:
        consumes["warehouse"] = lambda source: True
    if settings.workflows_wanted():
        consumes["workflows"] = lambda source: True
    return consumes


class Views:
    def __init__(self, journal: Journal, settings: Settings) -> None:
        self.journal = journal
        self.settings = settings
        self.q = journal.q

    # -- events -------------------------------------------------------------------------------
    async def seq_at(self, when: float) -> int:
        """The first seq received at or after ``when`` (seq grows with time: a binary search)."""
        q = self.q

        def job(conn: Any) -> int:
            # Two statements: SQLite answers MIN or MAX alone from the key, both at once with a scan.
            first = conn.execute("SELECT MIN(seq) FROM events").fetchone()[0]
            if first is None:
                return 0
            lo, hi = int(first), int(conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]) + 1
            while lo < hi:
                mid = (lo + hi) // 2
                row = conn.execute(q("SELECT received_at FROM events WHERE seq >= ? ORDER BY seq LIMIT 1"),
                                   (mid,)).fetchone()
                if row is None or float(row[0]) >= when:
                    hi = mid
                else:
                    lo = mid + 1
            return lo

        return await self.journal.run(job)

    async def events(self, *, before: int | None = None, after: int | None = None, source: str | None = None,
                     seqs: Sequence[int] | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first below ``before``, or oldest first from ``after`` (a time search), or ``seqs``."""
        q = self.q
        where: list[str] = []
        params: list[Any] = []
        order = "DESC"
        if seqs is not None:
            if not seqs:
                return []
            where.append(f"seq IN ({', '.join('?' * len(seqs))})")
            params.extend(seqs)
        if before is not None:
            where.append("seq < ?")
            params.append(before)
        if after is not None:
            where.append("seq >= ?")
            params.append(after)
            order = "ASC"
        if source:
            where.append("stream = ? AND source = ?")  # the (stream, seq) index, then the source
            params.extend([streams.stream_of(source), source])
        clause = f"WHERE {' AND '.join(where)} " if where else ""

        def job(conn: Any) -> list[dict[str, Any]]:
            rows = conn.execute(q(f"SELECT seq, source, received_at, event_type, body FROM events {clause}"
                                  f"ORDER BY seq {order} LIMIT ?"), (*params, limit)).fetchall()
            return [{"seq": int(r[0]), "source": r[1], "received_at": float(r[2]), "event_type": r[3],
                     **summary_of(bytes(r[4]))} for r in rows]

        return await self.journal.run(job)

    async def find(self, ref: str) -> list[int]:
        return await asyncio.to_thread(find_seqs, self.journal, ref.strip(), list(self.settings.sources))

    async def event(self, seq: int) -> dict[str, Any] | None:
        consumes = consumers(self.settings)
        workflows = [w.name for w in self.settings.workflows]
        found = await asyncio.to_thread(trace, self.journal, seq, list(consumes), consumes, workflows)
        if found is None:
            return None
        q = self.q

        def job(conn: Any) -> tuple[bytes, bytes]:
            row = conn.execute(q("SELECT body, COALESCE(id_key, fp_key) FROM events WHERE seq = ?"), (seq,)).fetchone()
            return bytes(row[0]), bytes(row[1])

        found["raw"], found["key"] = await self.journal.run(job)
        return found

    # -- dead letters -------------------------------------------------------------------------
    async def dead_letters(self, *, destination: str | None = None, reason: str | None = None,
                           after: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where, params = self._dead_where(destination, reason)
        if after is not None:
            where += " AND o.id > ?"
            params.append(after)
        q = self.q

        def job(conn: Any) -> list[dict[str, Any]]:
            rows = conn.execute(q(
                "SELECT o.id, o.destination, o.seq, o.reason, o.status_code, o.attempts, o.updated_at, o.status, "
                f"e.body, e.source FROM outcomes o LEFT JOIN events e ON e.seq = o.seq WHERE {where} "
                "ORDER BY o.id LIMIT ?"), (*params, limit)).fetchall()
            return [{"id": int(r[0]), "destination": r[1], "seq": int(r[2]), "reason": r[3], "status_code": r[4],
                     "attempts": int(r[5]), "updated_at": float(r[6]), "status": r[7], "source": r[9],
                     "summary": summary_of(bytes(r[8])) if r[8] is not None else {}} for r in rows]

        return await self.journal.run(job)

    def _dead_where(self, destination: str | None, reason: str | None) -> tuple[str, list[Any]]:
        where, params = "o.status IN (?, ?)", list(DEAD)
        if destination:
            where += " AND o.destination = ?"
            params.append(destination)
        if reason:
            where += " AND o.reason LIKE ? ESCAPE '\\'"
            params.append("%" + reason.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        return where, params

    async def replay(self, ids: Sequence[int] | None = None, *, destination: str | None = None,
                     reason: str | None = None) -> int:
        """Queue dead letters for delivery again: these ids, or all that match the filter."""
        where, params = self._dead_where(destination, reason)
        if ids is not None:
            if not ids:
                return 0
            where += f" AND o.id IN ({', '.join('?' * len(ids))})"
            params.extend(ids)
        q = self.q

        def job(conn: Any) -> int:
            return int(conn.execute(q(
                f"UPDATE outcomes SET status = ?, next_attempt_at = NULL, updated_at = ? WHERE id IN "
                f"(SELECT o.id FROM outcomes o WHERE {where})"), (oc.REPLAY_REQUESTED, time.time(), *params)).rowcount)

        return await self.journal.run(job)

    async def dead_letter_counts(self) -> dict[str, int]:
        def job(conn: Any) -> dict[str, int]:
            return {str(r[0]): int(r[1]) for r in conn.execute(self.q(
                "SELECT destination, COUNT(*) FROM outcomes WHERE status IN (?, ?) GROUP BY destination"), DEAD)}

        return await self.journal.run(job)

    # -- delivery state -----------------------------------------------------------------------
    async def progress(self) -> dict[str, dict[str, Any]]:
        """Per destination: backlog (events on its stream past its cursor) and lag (age of the first)."""
        q, now = self.q, time.time()

        def job(conn: Any) -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {}
            tops: dict[int, int] = {}  # the last seq of each stream (an index lookup each)
            for name, position, stream in conn.execute("SELECT destination, position, stream FROM cursors"):
                position = int(position)
                where, params = ("stream = ? AND seq > ?", [int(stream), position]) if stream is not None \
                    else ("seq > ?", [position])
                first = conn.execute(q(f"SELECT seq, received_at FROM events WHERE {where} ORDER BY seq LIMIT 1"),
                                     params).fetchone()
                if stream is not None and int(stream) not in tops:
                    top = conn.execute(q("SELECT MAX(seq) FROM events WHERE stream = ?"), (int(stream),)).fetchone()
                    tops[int(stream)] = int(top[0] or 0)
                top_seq = tops.get(int(stream)) if stream is not None else None
                if top_seq is None:
                    top_seq = int(conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0)
                out[str(name)] = {"cursor": position, "backlog_upper": max(0, top_seq - position),
                                  "lag_seconds": 0.0 if first is None else max(0.0, now - float(first[1]))}
            return out

        return await self.journal.run(job)

    # -- workflow runs ------------------------------------------------------------------------
    async def runs(self, *, workflow: str | None = None, state: str | None = None, before: int | None = None,
                   limit: int = 50) -> list[dict[str, Any]]:
        from sgbridge.journal.workflow_runs import WorkflowRuns

        rows = await asyncio.to_thread(WorkflowRuns(self.journal).list_runs, workflow, state, limit, before)
        return [{**r.as_json(), "run_key": r.run_key} for r in rows]

    async def timers(self, limit: int = 20) -> list[dict[str, Any]]:
        """The next timers due (the wf_runs_due index)."""
        def job(conn: Any) -> list[dict[str, Any]]:
            rows = conn.execute(self.q("SELECT id, workflow, run_key, state, position, due_at FROM wf_runs "
                                       "WHERE due_at IS NOT NULL ORDER BY due_at LIMIT ?"), (limit,)).fetchall()
            return [dict(zip(("id", "workflow", "run_key", "state", "position", "due_at"), r, strict=True))
                    for r in rows]

        return await self.journal.run(job)

    async def run(self, run_id: int) -> dict[str, Any] | None:
        from sgbridge.journal.workflow_runs import WorkflowRuns

        runs = WorkflowRuns(self.journal)
        found = await asyncio.to_thread(runs.get, run_id)
        if found is None:
            return None
        steps = await asyncio.to_thread(runs.steps, run_id)
        dead = await self.journal.run(lambda conn: conn.execute(self.q(
            "SELECT id, status, reason FROM outcomes WHERE destination = ? AND seq = ?"),
            (DEAD_LETTER_PREFIX + found.workflow, found.trigger_seq)).fetchone())
        return {**found.as_json(), "context": found.context, "steps": steps,
                "dead_letter": None if dead is None else {"id": dead[0], "status": dead[1], "reason": dead[2]}}

    async def cancel(self, run_id: int) -> bool:
        from sgbridge.journal.workflow_runs import WorkflowRuns

        return await asyncio.to_thread(WorkflowRuns(self.journal).cancel, run_id, time.time())

    # -- object sync --------------------------------------------------------------------------
    async def sync_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        from sgbridge.journal.sync_runs import SyncRuns

        history = await asyncio.to_thread(SyncRuns(self.journal).history, None, limit)
        return [r.as_json() for r in history]


def jsonable(value: Any) -> Any:
    """Dataclasses (planned operations) and bytes, for display as JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def pretty(value: Any) -> str:
    return orjson.dumps(jsonable(value), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                        default=str).decode()
