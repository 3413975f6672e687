"""A workflow engine on a journal with a clock the test moves: the intake, the runner, and the
actions (simulated, or live against the SendGrid emulator through ASGITransport)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from sgbridge.destinations.workflows import WorkflowIntake
from sgbridge.journal import Journal
from sgbridge.journal.workflow_runs import RunRow, WorkflowRuns
from sgbridge.model import InboundEvent, InboundRequest, StoredEvent
from sgbridge.settings import Settings
from sgbridge.workflows.engine import ActionPort, Engine, LiveActions, SimulatedActions, WorkflowRunner

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOUR = 3600.0
DAY = 86400.0
SENDGRID_HOST = "sendgrid.test"
API_KEY = "SG.test-key"
TEMPLATE = "d-0c6a2b7f5e1d4c3b9a8f7e6d5c4b3a21"
ACTIONS = {"sendgrid": {"destination": "sendgrid", "settings": {"sendGridApiKey": API_KEY}}}


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def email_step(name: str | None = None, template: str = TEMPLATE, **data: Any) -> dict[str, Any]:
    """A sendEmail step to the profile's address; ``data``: dynamic template data (mappings)."""
    step: dict[str, Any] = {"action": "sendEmail", "destination": "sendgrid", "mapping": {
        "from": {"email": "shop@example.com"}, "to": {"email": {"@path": "$.traits.email"}},
        "template_id": template, **({"dynamic_template_data": data} if data else {})}}
    if name:
        step["name"] = name
    return step


def track(user: str, event: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, "properties": properties}


def identify(user: str, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "traits": traits}


def sendgrid_event(kind: str, email: str, at: float, user: str | None = None, **extra: Any) -> dict[str, Any]:
    """A SendGrid webhook event (what the bridge stores for source "default")."""
    body: dict[str, Any] = {"email": email, "timestamp": int(at), "event": kind,
                            "sg_event_id": hashlib.sha1(f"{kind}{email}{at}{extra}".encode()).hexdigest()[:22],
                            "sg_message_id": "msg-1.filter", **extra}
    if user is not None:
        body["segment_user_id"] = user
    return body


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class World:
    """The workflows of one test on one journal."""

    def __init__(self, journal: Journal, settings: Settings, port: ActionPort | None = None) -> None:
        self.journal = journal
        self.settings = settings
        self.workflows = settings.compiled_workflows()
        self.clock = Clock()
        self.runs = WorkflowRuns(journal)
        self.simulated = SimulatedActions()
        self.port: ActionPort = port if port is not None else self.simulated
        self.engine = Engine(self.workflows, self.runs, self.port, settings.workflow_engine)
        self.runner = WorkflowRunner(self.engine, self.runs, settings.workflow_engine, clock=self.clock)
        self.intake = WorkflowIntake(settings, self.workflows, journal, clock=self.clock)
        self.seq = 0
        self.windows: list[list[StoredEvent]] = []

    # -- events ----------------------------------------------------------------------------
    def stored(self, body: dict[str, Any]) -> StoredEvent:
        """An event as the journal would hold it (not stored: see ``send``)."""
        self.seq += 1
        source, kind = _source_of(body)
        return StoredEvent(self.seq, source, kind, self.clock(), hashlib.sha256(b"k%d" % self.seq).digest()[:16],
                           orjson.dumps(body))

    async def send(self, *bodies: dict[str, Any]) -> list[int]:
        """One window of events, appended to the journal now (as the inbound endpoints do), then
        applied by the intake; their seqs."""
        events = []
        for body in bodies:
            self.seq += 1
            source, kind = _source_of(body)
            key = hashlib.sha256(b"%s-k%d" % (uuid.uuid4().bytes, self.seq)).digest()[:16]
            events.append(InboundEvent(source, kind, key, key, orjson.dumps(body)))
        await self.journal.append(InboundRequest(events[0].source, self.clock(), 0, events))
        last = self.journal.latest_seq()
        window = [StoredEvent(last - len(events) + 1 + i, e.source, e.event_type, self.clock(), e.fp_key, e.body)
                  for i, e in enumerate(events)]
        self.windows.append(window)
        await self.intake.deliver(window)
        return [e.seq for e in window]

    async def redeliver(self, index: int = -1) -> None:
        """A window the intake applies again (a crash before its cursor moved)."""
        await self.intake.deliver(self.windows[index])

    # -- time --------------------------------------------------------------------------
    async def run(self) -> int:
        """Advance every run due now, until none is (a run written back ready goes on at once)."""
        total = 0
        for _ in range(50):
            advanced = await self.runner.run_once()
            if not advanced:
                return total
            total += advanced
        raise AssertionError("runs keep coming due at the same instant")

    async def later(self, seconds: float) -> None:
        """The clock moves on by ``seconds``, firing each timer at its due time on the way."""
        until = self.clock.now + seconds
        await self.run()
        while (due := await self.runs.next_due()) is not None and due <= until:
            self.clock.now = max(self.clock.now, due)
            await self.run()
        self.clock.now = until
        await self.run()

    async def jump(self, seconds: float) -> None:
        """The bridge was down: the clock moves on at once, then the runner looks."""
        self.clock.now += seconds
        await self.run()

    # -- what the product says -----------------------------------------------------------
    def all_runs(self, workflow: str | None = None) -> list[RunRow]:
        return sorted(self.runs.list_runs(workflow, limit=10_000), key=lambda r: r.id)

    def only_run(self, workflow: str | None = None, key: str | None = None) -> RunRow:
        found = [r for r in self.all_runs(workflow) if key is None or r.run_key == key]
        assert len(found) == 1, [(r.id, r.workflow, r.run_key, r.state) for r in found]
        return found[0]

    def steps(self, run: RunRow | int) -> dict[str, dict[str, Any]]:
        """The run's steps by position."""
        return {s["position"]: s for s in self.runs.steps(run if isinstance(run, int) else run.id)}

    def sent(self, key: str | None = None) -> list[dict[str, Any]]:
        """What the simulated actions did (for ``key``'s runs)."""
        return [a for a in self.simulated.performed if key is None or a["key"] == key]


def _source_of(body: dict[str, Any]) -> tuple[str, str]:
    if "sg_event_id" in body:  # SendGrid's bounce events have a "type" of their own
        return "default", str(body["event"])
    return "segment:api", str(body["type"])


def settings_of(workflows: list[dict[str, Any]], **engine: Any) -> Settings:
    return Settings(actions=ACTIONS, workflows=workflows, workflow_engine=engine)


@contextmanager
def world(database_url: str, workflows: list[dict[str, Any]], port: ActionPort | None = None,
          **engine: Any) -> Iterator[World]:
    journal = Journal(database_url)
    try:
        yield World(journal, settings_of(workflows, **engine), port)
    finally:
        journal.close()


def live_actions(w: World, client: httpx.AsyncClient) -> LiveActions:
    """Actions sent for real to the SendGrid emulator behind ``client``; the world uses them."""
    port = LiveActions(w.workflows, w.settings.actions, w.journal, client, endpoint=f"http://{SENDGRID_HOST}")
    w.port = port
    w.engine.actions = port
    return port
