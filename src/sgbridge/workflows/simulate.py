"""``sgbridge workflows test``: a file of events replayed through the workflows on a simulated clock.

The same intake and engine as ``serve``, on a journal in a temporary folder: each event arrives at
its own ``timestamp`` (events without one, one second after the previous), timers fire at their
due times in between, and after the last event the clock runs on until nothing is left to fire
(or ``horizon`` seconds). Nothing is sent unless an endpoint is given: each action step is
recorded with the payload its mapping builds.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from sgbridge.destinations.workflows import WorkflowIntake
from sgbridge.journal import Journal
from sgbridge.journal.workflow_runs import WorkflowRuns
from sgbridge.model import StoredEvent
from sgbridge.routing.sendgrid_to_segment import iso_utc_ms
from sgbridge.settings import Settings
from sgbridge.workflows.engine import ActionPort, Engine, LiveActions, SimulatedActions, WorkflowRunner
from sgbridge.workflows.language import Workflow, timestamp
from sgbridge.workflows.profile_api import ProfileApi


class SimulatedClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


iso = iso_utc_ms  # the times of the report, as Segment's events write them


def read_events(path: Path) -> list[dict[str, Any]]:
    """A JSON array of events, or one JSON object per line."""
    text = path.read_bytes()
    try:
        loaded = orjson.loads(text)
        items = loaded if isinstance(loaded, list) else [loaded]
    except orjson.JSONDecodeError:
        items = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    bad = [i for i, item in enumerate(items) if not isinstance(item, dict)]
    if bad:
        raise ValueError(f"event {bad[0]} of {path} is not a JSON object")
    return items


SEGMENT_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})


def _stored(seq: int, event: dict[str, Any], at: float) -> StoredEvent:
    # SendGrid's bounce events have a "type" of their own ("bounce", "blocked"): not a Segment call's
    sendgrid = event.get("type") not in SEGMENT_TYPES and "event" in event and (
        "sg_event_id" in event or "email" in event)
    source, kind = ("default", str(event.get("event"))) if sendgrid else ("segment:api", str(event.get("type")))
    key = hashlib.sha256(f"test-{seq}".encode()).digest()[:16]
    return StoredEvent(seq, source, kind, at, key, orjson.dumps(event))


def _time_of(event: dict[str, Any]) -> float | None:
    return timestamp(event.get("timestamp"))


async def simulate(settings: Settings, events: Sequence[dict[str, Any]], workflow: str | None = None,
                   endpoint: str | None = None, horizon: float = 366 * 86400.0) -> dict[str, Any]:
    compiled: dict[str, Workflow] = settings.compiled_workflows()
    if workflow is not None:
        if workflow not in compiled:
            raise ValueError(f"no workflow {workflow!r} (configured: {', '.join(compiled) or 'none'})")
        compiled = {workflow: compiled[workflow]}
    times = [t for t in (_time_of(e) for e in events) if t is not None]
    clock = SimulatedClock(min(times) if times else datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    with tempfile.TemporaryDirectory(prefix="sgbridge-workflows-test-") as folder:
        journal = Journal(f"sqlite:///{folder}/journal.db")
        client = httpx.AsyncClient()
        try:
            runs = WorkflowRuns(journal)
            simulated = SimulatedActions()
            port: ActionPort = simulated if endpoint is None else LiveActions(
                compiled, settings.actions, journal, client, endpoint=endpoint,
                segment_url=settings.segment.base_url(), write_key=settings.write_key_for("default"))
            profiles = ProfileApi(settings.workflow_engine, client) \
                if ProfileApi.configured(settings.workflow_engine) else None  # reads only: used in tests too
            engine = Engine(compiled, runs, port, settings.workflow_engine, profiles)
            runner = WorkflowRunner(engine, runs, settings.workflow_engine, clock=clock)
            intake = WorkflowIntake(settings, compiled, journal, clock=clock)
            for seq, event in enumerate(events, start=1):
                at = _time_of(event)
                at = clock.now + 1.0 if at is None else max(at, clock.now)
                await _fire_until(runner, runs, clock, at)
                clock.now = at
                await intake.deliver([_stored(seq, event, at)])
                await runner.run_once()
            await _fire_until(runner, runs, clock, clock.now + horizon)
            return _report(runs, simulated.performed if endpoint is None else None)
        finally:
            await client.aclose()
            journal.close()


async def _fire_until(runner: WorkflowRunner, runs: WorkflowRuns, clock: SimulatedClock, until: float) -> None:
    """Move the clock from timer to timer up to ``until``, firing each at its time."""
    while True:
        due = await runs.next_due()
        if due is None or due > until:
            return
        clock.now = max(clock.now, due)
        if not await runner.run_once():
            return  # nothing could be taken up (cannot happen): never spin


def _report(runs: WorkflowRuns, performed: list[dict[str, Any]] | None) -> dict[str, Any]:
    out = []
    for run in sorted(runs.list_runs(limit=1_000_000), key=lambda r: r.id):
        entry: dict[str, Any] = {"run": run.id, "workflow": run.workflow, "key": run.run_key, "state": run.state,
                                 "detail": run.detail, "trigger_event": run.trigger_seq - 1,
                                 "started_at": iso(run.started_at), "ended_at": None if run.state in
                                 ("ready", "waiting", "running") else iso(run.updated_at),
                                 "steps": [{**s, "at": iso(s["at"])} for s in runs.steps(run.id)]}
        if performed is not None:
            entry["actions"] = [{k: (iso(v) if k == "at" else v) for k, v in a.items() if k not in ("run", "key")}
                                for a in performed if a["run"] == run.id]
        out.append(entry)
    return {"runs": out, "sent": performed is None}
