"""Workflow runs, their timers, step log, counted events and profiles, in the journal database.

The SQL of sgbridge.workflows lives here (the journal is the only package that speaks SQL).
Functions taking ``conn`` run inside a journal job (one transaction, in the writer thread); the
methods of ``WorkflowRuns`` submit their own jobs.

Timers: a run's ``due_at`` on a partial index; the runner takes due runs up in one statement that
also moves ``due_at`` to the end of a lease, so a run taken up by a process that then dies is
taken over once the lease passes. On PostgreSQL the claim locks with ``SKIP LOCKED``: two
processes never take the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sgbridge import outcomes as oc
from sgbridge.journal.journal import _EVENT_FIELDS, Journal, _stored, _text
from sgbridge.model import OutcomeRecord, StoredEvent

READY, WAITING, RUNNING = "ready", "waiting", "running"
COMPLETED, EXITED, FAILED, CANCELLED, LATE = "completed", "exited", "failed", "cancelled", "late"
ACTIVE = (READY, WAITING, RUNNING)
ENDED = (COMPLETED, EXITED, FAILED, CANCELLED, LATE)
_COLUMNS = ("id, workflow, run_key, state, position, due_at, waiting_for, trigger_seq, started_at, updated_at, "
            "owner, detail, context")
_CHUNK = 400  # ids or keys per IN (...) list
DEAD_LETTER_PREFIX = "workflow:"  # a failed run's dead letter: destination "workflow:<name>", its trigger's seq
HELD_MARK = ": held for review: "  # in a failed run's detail: an email whose outcome is unknown
REPLAYING = "replaying"


def dead_letter_destination(workflow: str) -> str:
    return f"{DEAD_LETTER_PREFIX}{workflow}"


@dataclass(slots=True)
class RunRow:
    id: int
    workflow: str
    run_key: str
    state: str
    position: str
    due_at: float | None
    waiting_for: str | None
    trigger_seq: int
    started_at: float
    updated_at: float
    owner: str | None
    detail: str | None
    context: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "workflow": self.workflow, "key": self.run_key, "state": self.state,
                "position": self.position, "due_at": self.due_at, "waiting_for": self.waiting_for,
                "trigger_seq": self.trigger_seq, "started_at": self.started_at, "updated_at": self.updated_at,
                "detail": self.detail}


@dataclass(slots=True)
class Writeback:
    """A run's state after the runner advanced it."""

    state: str
    position: str
    due_at: float | None
    waiting_for: str | None
    context: dict[str, Any]
    detail: str | None = None
    steps: Sequence[tuple[str, str, str, float, Any]] = ()  # (position, kind, state, at, output)
    # Checked in the same transaction, for events that arrived while the run was taken up: a
    # wait_for's counter (the run goes on at once) and the exit_on counters (the run ends).
    watch_counter: str | None = None
    exit_counters: Sequence[str] = ()
    since: float = 0.0


def _row(row: Sequence[Any]) -> RunRow:
    return RunRow(int(row[0]), row[1], row[2], row[3], row[4], None if row[5] is None else float(row[5]), row[6],
                  int(row[7]), float(row[8]), float(row[9]), row[10], row[11], orjson.loads(bytes(row[12])))


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


class WorkflowRuns:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.q = journal.dialect.sql
        self.postgres = journal.dialect.name == "postgres"

    # -- inside an intake job ------------------------------------------------------------
    def profiles(self, conn: Any, keys: Sequence[str]) -> dict[str, tuple[dict[str, Any], int]]:
        """The profiles of these keys (locked on PostgreSQL until the window's transaction ends: a
        runner's ``change_profile`` waits for it, or it for the runner)."""
        out: dict[str, tuple[dict[str, Any], int]] = {}
        for part in _chunks(list(keys)):
            marks = ",".join("?" * len(part))
            for key, traits, seq in conn.execute(self.q(
                    f"SELECT profile_key, traits, seq FROM profiles WHERE profile_key IN ({marks}){self._lock}"),
                    tuple(part)):
                out[key] = (orjson.loads(traits), int(seq))
        return out

    def save_profiles(self, conn: Any, rows: Sequence[tuple[str, dict[str, Any], int]], now: float) -> None:
        self.journal.dialect.executemany(conn, (
            "INSERT INTO profiles (profile_key, traits, seq, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (profile_key) "
            "DO UPDATE SET traits = excluded.traits, seq = excluded.seq, updated_at = excluded.updated_at"),
            [(key, orjson.dumps(traits).decode(), seq, now) for key, traits, seq in rows])

    def active_runs(self, conn: Any, keys: Sequence[str]) -> list[tuple[int, str, str, str, str | None]]:
        """(id, workflow, run_key, state, waiting_for) of the active runs of these keys; locked on
        PostgreSQL, so a runner's write-back of one of them waits for this job, or this job for it."""
        out = []
        lock = " FOR UPDATE" if self.postgres else ""
        for part in _chunks(list(keys)):
            marks = ",".join("?" * len(part))
            out += [(int(r[0]), r[1], r[2], r[3], r[4]) for r in conn.execute(self.q(
                f"SELECT id, workflow, run_key, state, waiting_for FROM wf_runs WHERE run_key IN ({marks}) "
                f"AND state IN (?, ?, ?) ORDER BY id{lock}"), (*part, *ACTIVE))]
        return out

    def has_run(self, conn: Any, workflow: str, key: str) -> bool:
        return conn.execute(self.q("SELECT 1 FROM wf_runs WHERE run_key = ? AND workflow = ? LIMIT 1"),
                            (key, workflow)).fetchone() is not None

    def start_run(self, conn: Any, workflow: str, key: str, trigger_seq: int, now: float, context: dict[str, Any],
                  one_active: bool) -> int | None:
        """A new run, due now; None if the key already has an active run (``one_active``) or this
        event already started one (the window applied twice)."""
        row = conn.execute(self.q(
            "INSERT INTO wf_runs (workflow, run_key, state, position, due_at, trigger_seq, started_at, updated_at, "
            "active_key, context) VALUES (?, ?, ?, '0', ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id"),
            (workflow, key, READY, now, trigger_seq, now, now, f"{workflow}\x1f{key}" if one_active else None,
             orjson.dumps(context))).fetchone()
        return None if row is None else int(row[0])

    def record_history(self, conn: Any, rows: Sequence[tuple[str, str, float, int]]) -> None:
        self.journal.dialect.executemany(
            conn, "INSERT INTO wf_history (run_key, counter, at, seq) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            rows)

    def count(self, conn: Any, key: str, counter: str, since: float, until: float) -> int:
        return int(conn.execute(self.q(
            "SELECT COUNT(*) FROM wf_history WHERE run_key = ? AND counter = ? AND at >= ? AND at <= ?"),
            (key, counter, since, until)).fetchone()[0])

    def count_after(self, conn: Any, key: str, counter: str, after_seq: int) -> int:
        """Counted events after an event of the log (a run's trigger): by seq, not time, since the
        intake gives every event of a window the same time."""
        return int(conn.execute(self.q(
            "SELECT COUNT(*) FROM wf_history WHERE run_key = ? AND counter = ? AND seq > ?"),
            (key, counter, after_seq)).fetchone()[0])

    def end_runs(self, conn: Any, ids: Sequence[int], state: str, detail: str, now: float) -> int:
        """End active runs that are not taken up (ready or waiting)."""
        ended = 0
        for part in _chunks(list(ids)):
            marks = ",".join("?" * len(part))
            cur = conn.execute(self.q(
                f"UPDATE wf_runs SET state = ?, due_at = NULL, waiting_for = NULL, active_key = NULL, detail = ?, "
                f"updated_at = ? WHERE id IN ({marks}) AND state IN (?, ?)"),
                (state, _text(detail), now, *part, READY, WAITING))
            ended += max(cur.rowcount, 0)
        return ended

    def signal(self, conn: Any, run_id: int, waiting_for: str, matched: dict[str, Any], now: float) -> bool:
        """An event a waiting run's wait_for matched: the run goes on now, with the event."""
        row = conn.execute(self.q("SELECT context FROM wf_runs WHERE id = ? AND state = ? AND waiting_for = ?"),
                           (run_id, WAITING, waiting_for)).fetchone()
        if row is None:
            return False
        context = orjson.loads(bytes(row[0]))
        context["matched"] = matched
        conn.execute(self.q("UPDATE wf_runs SET state = ?, due_at = ?, waiting_for = NULL, context = ?, updated_at = ? "
                            "WHERE id = ?"), (READY, now, orjson.dumps(context), now, run_id))
        return True

    # -- the runner ----------------------------------------------------------------------
    async def claim_due(self, now: float, limit: int, owner: str, lease: float) -> list[RunRow]:
        """Take up to ``limit`` runs whose timer is due (or whose lease passed)."""
        skip = " FOR UPDATE SKIP LOCKED" if self.postgres else ""

        def job(conn: Any) -> list[RunRow]:
            # updated_at: when the run was taken up (kept when a lease passed and another process
            # takes it over), so the write-back finds every event that arrived while it was running.
            rows = conn.execute(self.q(
                f"UPDATE wf_runs SET state = ?, owner = ?, due_at = ?, updated_at = CASE WHEN state = ? THEN "
                f"updated_at ELSE ? END WHERE id IN (SELECT id FROM wf_runs WHERE due_at IS NOT NULL AND "
                f"due_at <= ? ORDER BY due_at LIMIT ?{skip}) RETURNING {_COLUMNS}"),
                (RUNNING, owner, now + lease, RUNNING, now, now, limit)).fetchall()
            return sorted((_row(r) for r in rows), key=lambda r: r.id)

        return await self.journal.run(job)

    async def renew_leases(self, owner: str, now: float, lease: float) -> int:
        """Keep the runs ``owner`` has in hand (a long action step) from being taken over: their
        lease (``due_at``, which lies between now and now + lease while it holds: found on the
        timers' index) now ends at now + lease."""
        return await self.journal.run(lambda conn: max(int(conn.execute(self.q(
            "UPDATE wf_runs SET due_at = ? WHERE due_at >= ? AND due_at <= ? AND owner = ? AND state = ?"),
            (now + lease, now, now + lease, owner, RUNNING)).rowcount), 0))

    async def next_due(self) -> float | None:
        row = await self.journal.run(lambda conn: conn.execute(
            "SELECT MIN(due_at) FROM wf_runs WHERE due_at IS NOT NULL").fetchone())
        return None if row is None or row[0] is None else float(row[0])

    async def timers_pending(self) -> int:
        """Runs waiting on a timer (a wait, or a wait_for's timeout)."""
        row = await self.journal.run(lambda conn: conn.execute(self.q(
            "SELECT COUNT(*) FROM wf_runs WHERE due_at IS NOT NULL AND state = ?"), (WAITING,)).fetchone())
        return int(row[0])

    async def change_profile(self, key: str, change: Callable[[dict[str, Any]], Any], now: float) -> None:
        """Change one profile's traits outside the intake (what a workflow step did to SendGrid)."""
        def job(conn: Any) -> None:
            found = self.profiles(conn, [key]).get(key, ({}, 0))
            change(found[0])
            self.save_profiles(conn, [(key, found[0], found[1])], now)

        await self.journal.run(job)

    async def profile(self, key: str) -> dict[str, Any]:
        def job(conn: Any) -> dict[str, Any]:
            row = conn.execute(self.q("SELECT traits FROM profiles WHERE profile_key = ?"), (key,)).fetchone()
            return {} if row is None else dict(orjson.loads(row[0]))

        return await self.journal.run(job)

    async def count_async(self, key: str, counter: str, since: float, until: float) -> int:
        return await self.journal.run(lambda conn: self.count(conn, key, counter, since, until))

    async def count_after_async(self, key: str, counter: str, after_seq: int) -> int:
        return await self.journal.run(lambda conn: self.count_after(conn, key, counter, after_seq))

    async def stored_event(self, seq: int) -> StoredEvent | None:
        """One event of the log (a wait_for's match found at write-back carries only its seq)."""
        row = await self.journal.run(lambda conn: conn.execute(
            self.q(f"SELECT {_EVENT_FIELDS} FROM events WHERE seq = ?"), (seq,)).fetchone())
        return None if row is None else _stored(row)

    async def step_done_before(self, run_id: int, position: str) -> Any:
        """The output an action step recorded as done (a run taken over after a crash); None if not done."""
        row = await self.journal.run(lambda conn: conn.execute(self.q(
            "SELECT state, output FROM wf_steps WHERE run_id = ? AND position = ?"), (run_id, position)).fetchone())
        if row is None or row[0] != "done":
            return None
        return orjson.loads(row[1]) if row[1] else {}

    async def step_started(self, run_id: int, position: str, kind: str, now: float) -> None:
        await self.journal.run(lambda conn: conn.execute(self.q(
            "INSERT INTO wf_steps (run_id, position, kind, state, at) VALUES (?, ?, ?, 'started', ?) ON CONFLICT "
            "(run_id, position) DO UPDATE SET state = 'started', at = excluded.at"), (run_id, position, kind, now)),
            durable=True)

    async def write_back(self, run: RunRow, owner: str, result: Writeback, now: float) -> str | None:
        """Store what the runner did; the state stored (it may differ: an exit or a match that
        arrived meanwhile), or None if the run was taken over by another process."""

        def job(conn: Any) -> str | None:
            current = conn.execute(self.q(f"SELECT owner, state FROM wf_runs WHERE id = ?{self._lock}"),
                                   (run.id,)).fetchone()
            if current is None or current[0] != owner or current[1] != RUNNING:
                return None  # cancelled, or its lease passed and another process has it
            state, due_at, waiting_for, detail = result.state, result.due_at, result.waiting_for, result.detail
            context = result.context
            if state in ACTIVE:
                # Any exit event after the trigger: one that came while the run was ready or
                # waiting ended it then, so one found now came while a process had it in hand.
                exit_hit = self._first_since(conn, run, result.exit_counters, 0.0, now)
                if exit_hit is not None:
                    state, due_at, waiting_for = EXITED, None, None
                    detail = f"exit_on matched event {exit_hit[1]}: {exit_hit[0]}"
                elif result.watch_counter is not None:
                    hit = self._first_since(conn, run, [result.watch_counter], result.since, now)
                    if hit is not None:
                        context = {**context, "matched": {"seq": hit[1]}}
                        state, due_at, waiting_for = READY, now, None
            ended = state in ENDED
            conn.execute(self.q(
                "UPDATE wf_runs SET state = ?, position = ?, due_at = ?, waiting_for = ?, context = ?, detail = ?, "
                "owner = NULL, updated_at = ?, active_key = CASE WHEN ? THEN NULL ELSE active_key END WHERE id = ?"),
                (state, result.position, due_at, waiting_for, orjson.dumps(context), _text(detail), now, ended,
                 run.id))
            if state == FAILED:  # a dead letter, in the same transaction: listed and replayed as the others
                held = detail is not None and HELD_MARK in detail
                self.journal._upsert_outcomes(conn, dead_letter_destination(run.workflow), [OutcomeRecord(
                    run.trigger_seq, oc.HELD if held else oc.REJECTED, f"run {run.id}: {detail}")], 1)
            elif ended and context.get("replayed"):
                conn.execute(self.q(
                    "UPDATE outcomes SET status = ?, reason = ?, updated_at = ? WHERE destination = ? AND seq = ? "
                    "AND status = ?"), (oc.DELIVERED, f"run {run.id} {state} after a replay", now,
                                        dead_letter_destination(run.workflow), run.trigger_seq, REPLAYING))
            self.journal.dialect.executemany(conn, (
                "INSERT INTO wf_steps (run_id, position, kind, state, at, output) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, position) DO UPDATE SET state = excluded.state, at = excluded.at, "
                "output = excluded.output"),
                [(run.id, pos, kind, st, at, None if out is None else orjson.dumps(out).decode())
                 for pos, kind, st, at, out in result.steps])
            return state

        return await self.journal.run(job)

    async def take_replays(self, now: float, one_active: Sequence[str], limit: int = 500) -> int:
        """Failed runs whose dead letters an operator asked to replay (``sgbridge dead-letters replay``):
        each goes on from the step that failed, with its tries counted afresh and, for an email held
        for review, sent again. How many runs were taken up. ``one_active``: the workflows that allow
        one active run per key (a replay waits while the key has another).
        """
        skip = " FOR UPDATE SKIP LOCKED" if self.postgres else ""

        def job(conn: Any) -> int:
            rows = conn.execute(self.q(
                f"SELECT id, destination, seq FROM outcomes WHERE status = ? AND destination LIKE ? ORDER BY id "
                f"LIMIT ?{skip}"), (oc.REPLAY_REQUESTED, f"{DEAD_LETTER_PREFIX}%", limit)).fetchall()
            taken = 0
            for outcome_id, destination, seq in rows:
                workflow = str(destination)[len(DEAD_LETTER_PREFIX):]
                found = conn.execute(self.q(
                    f"SELECT id, run_key, state, position, context FROM wf_runs WHERE workflow = ? AND "
                    f"trigger_seq = ?{self._lock}"), (workflow, int(seq))).fetchone()
                status, reason = REPLAYING, None
                if found is None:
                    status, reason = oc.REJECTED, "replay: the run no longer exists"
                elif found[2] != FAILED:
                    status, reason = oc.DELIVERED, f"replay: run {found[0]} is {found[2]}"
                active_key = None
                if found is not None and status == REPLAYING and workflow in one_active:
                    active_key = f"{workflow}\x1f{found[1]}"
                    other = conn.execute(self.q("SELECT id FROM wf_runs WHERE active_key = ?"),
                                         (active_key,)).fetchone()
                    if other is not None:  # the key's next run is under way: this one waits for it to end
                        continue
                if status == REPLAYING:
                    context = orjson.loads(bytes(found[4]))
                    context.get("attempts", {}).pop(found[3], None)
                    context["replay"], context["replayed"] = found[3], True
                    conn.execute(self.q(
                        "UPDATE wf_runs SET state = ?, due_at = ?, owner = NULL, active_key = ?, detail = ?, "
                        "context = ?, updated_at = ? WHERE id = ?"),
                        (READY, now, active_key, "replayed by an operator", orjson.dumps(context), now, found[0]))
                    taken += 1
                conn.execute(self.q("UPDATE outcomes SET status = ?, reason = COALESCE(?, reason), updated_at = ? "
                                    "WHERE id = ?"), (status, reason, now, outcome_id))
            return taken

        return await self.journal.run(job)

    @property
    def _lock(self) -> str:
        return " FOR UPDATE" if self.postgres else ""

    def _first_since(self, conn: Any, run: RunRow, counters: Sequence[str], since: float,
                     until: float) -> tuple[str, int] | None:
        """The first counted event after the run's trigger that arrived since ``since`` (while the
        run was taken up, the intake could not hand it over)."""
        for counter in counters:
            row = conn.execute(self.q(
                "SELECT seq FROM wf_history WHERE run_key = ? AND counter = ? AND seq > ? AND at >= ? AND at <= ? "
                "ORDER BY seq LIMIT 1"), (run.run_key, counter, run.trigger_seq, since, until)).fetchone()
            if row is not None:
                return counter, int(row[0])
        return None

    async def prune_history(self, before: float) -> int:
        def job(conn: Any) -> int:
            return max(int(conn.execute(self.q("DELETE FROM wf_history WHERE at < ?"), (before,)).rowcount), 0)

        return await self.journal.run(job)

    async def audience_members(self, audience: str) -> set[str]:
        """The addresses whose profile has ``audience`` true (the membership sgbridge recorded)."""
        pattern = "%" + orjson.dumps(audience).decode().replace("\\", "\\\\").replace("%", "\\%") + ":%"

        def job(conn: Any) -> set[str]:
            members: set[str] = set()
            rows = conn.execute(self.q("SELECT profile_key, traits FROM profiles WHERE traits LIKE ? ESCAPE '\\'"),
                                (pattern,))
            for key, text in rows:
                traits = orjson.loads(text)
                if traits.get(audience) is not True:
                    continue
                email = traits.get("email") if isinstance(traits.get("email"), str) else None
                if email is None and str(key).startswith("email:"):
                    email = str(key)[len("email:"):]
                if email:
                    members.add(email.strip().lower())
            return members

        return await self.journal.run(job)

    # -- the CLI -------------------------------------------------------------------------
    def list_runs(self, workflow: str | None = None, state: str | None = None, limit: int = 50,
                  before: int | None = None) -> list[RunRow]:
        """Newest first (below run ``before``: the console's keyset pages)."""
        where: list[str] = []
        params: list[Any] = []
        if before is not None:
            where.append("id < ?")
            params.append(before)
        if workflow:
            where.append("workflow = ?")
            params.append(workflow)
        if state:
            where.append("state = ?")
            params.append(state)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self.journal.run_sync(lambda conn: conn.execute(self.q(
            f"SELECT {_COLUMNS} FROM wf_runs {clause}ORDER BY id DESC LIMIT ?"), (*params, limit)).fetchall())
        return [_row(r) for r in rows]

    def get(self, run_id: int) -> RunRow | None:
        row = self.journal.run_sync(lambda conn: conn.execute(
            self.q(f"SELECT {_COLUMNS} FROM wf_runs WHERE id = ?"), (run_id,)).fetchone())
        return None if row is None else _row(row)

    def steps(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.journal.run_sync(lambda conn: conn.execute(self.q(
            "SELECT position, kind, state, at, output FROM wf_steps WHERE run_id = ? ORDER BY at, position"),
            (run_id,)).fetchall())
        return [{"position": r[0], "kind": r[1], "state": r[2], "at": float(r[3]),
                 "output": orjson.loads(r[4]) if r[4] else None} for r in rows]

    def cancel(self, run_id: int, now: float, reason: str = "cancelled by an operator") -> bool:
        """Cancel an active run (one taken up right now ends when the runner writes it back)."""
        def job(conn: Any) -> bool:
            cur = conn.execute(self.q(
                "UPDATE wf_runs SET state = ?, due_at = NULL, waiting_for = NULL, active_key = NULL, owner = NULL, "
                "detail = ?, updated_at = ? WHERE id = ? AND state IN (?, ?, ?)"),
                (CANCELLED, reason, now, run_id, *ACTIVE))
            return bool(cur.rowcount)

        return bool(self.journal.run_sync(job))

    def counts(self) -> dict[str, dict[str, int]]:
        rows = self.journal.run_sync(lambda conn: conn.execute(
            "SELECT workflow, state, COUNT(*) FROM wf_runs GROUP BY workflow, state").fetchall())
        out: dict[str, dict[str, int]] = {}
        for workflow, state, n in rows:
            out.setdefault(workflow, {})[state] = int(n)
        return out
