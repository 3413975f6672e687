"""Runs advance here: from the step a run is at, through its steps, to its next wait or its end.

The runner (``WorkflowRunner``) takes up due runs from the journal (their timers, or runs the
intake made ready), advances each with ``Engine.advance`` and writes the result back. Nothing of a
run lives in memory between two steps that wait: a run is its row (position, timer, context), so
1,000,000 waiting runs cost disk, not memory, and a run whose process was killed mid-wait fires on
time once restarted (or at once, if its time passed meanwhile).

Actions are done through an ``ActionPort``: ``LiveActions`` sends them with the action catalog's
code (the same as the action destinations'), ``SimulatedActions`` records what would be sent
(``sgbridge workflows test``). An action step's id is its run and position: the Segment
``messageId`` its mapping sees is derived from them, so an email of a run taken over after a
crash is never sent twice (the sendEmail guard holds it for review when its outcome is unknown).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

from sgbridge import __version__
from sgbridge.actions.payload import build_payload
from sgbridge.actions.results import DROPPED, HELD, OK, REJECTED, RETRY
from sgbridge.actions.runner import ActionRunner
from sgbridge.delivery import metrics
from sgbridge.destinations.actions import JournalMailGuard
from sgbridge.destinations.classify import classify_error, classify_response
from sgbridge.journal import Journal
from sgbridge.journal.workflow_runs import (
    COMPLETED,
    ENDED,
    EXITED,
    FAILED,
    HELD_MARK,
    LATE,
    READY,
    WAITING,
    RunRow,
    WorkflowRuns,
    Writeback,
)
from sgbridge.mappings import MappingError, SubscriptionError
from sgbridge.outcomes import Delivered, Retry
from sgbridge.routing.sendgrid_to_segment import iso_utc_ms
from sgbridge.settings import ActionDestinationSettings
from sgbridge.workflows.documents import WORKFLOWS_LIBRARY, TraitNames, segment_call, set_suppressed, visible
from sgbridge.workflows.language import (
    Action,
    AllOf,
    AnyOf,
    Condition,
    Count,
    Exit,
    Fql,
    Identify,
    If,
    Lookup,
    Not,
    Position,
    Step,
    Wait,
    WaitFor,
    Workflow,
    parse_position,
    position_text,
    timestamp,
)
from sgbridge.workflows.profile_api import ProfileApi, ProfileApiRefused, ProfileApiUnavailable
from sgbridge.workflows.settings import WorkflowEngineSettings

log = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 600.0
SUPPRESSIONS = ("addSuppression", "removeSuppression")  # sendgrid actions whose effect the profile keeps
REPLAYS_EVERY_SECONDS = 1.0  # how often the runner looks for replayed dead letters
GAUGE_EVERY_SECONDS = 10.0  # sgbridge_workflow_timers_pending


@dataclass(slots=True)
class StepResult:
    kind: str  # actions.results: delivered (OK), retry, rejected, held, dropped
    message: str = ""
    after: float | None = None
    output: dict[str, Any] = field(default_factory=dict)


class ActionPort(Protocol):
    async def perform(self, workflow: Workflow, step: Action, event: dict[str, Any], run: RunRow,
                      now: float, replay: bool = False) -> StepResult: ...

    async def identify(self, workflow: Workflow, step: Identify, call: dict[str, Any], run: RunRow,
                       now: float) -> StepResult:
        """Send one identify call (built by the engine) to Segment."""
        ...


def message_id(workflow: str, run_id: int, position: Position) -> str:
    """The Segment messageId an action step's mapping sees: one per run and step."""
    return f"wf-{workflow}-{run_id}-{position_text(position)}"


class LiveActions:
    """Action steps sent for real, through the destination named in the step (its API key, endpoint)."""

    def __init__(self, workflows: Mapping[str, Workflow], destinations: Mapping[str, ActionDestinationSettings],
                 journal: Journal, client: httpx.AsyncClient, endpoint: str | None = None,
                 segment_url: str | None = None, write_key: str | None = None) -> None:

        self.client = client
        self.segment_url = segment_url
        self._auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode() if write_key else None
        self._runners: dict[tuple[str, Position], ActionRunner] = {}
        for workflow in workflows.values():
            for step in _actions(workflow.steps):
                config = destinations[step.destination]
                settings = config.api_settings()
                assert step.subscribed is not None
                self._runners[(workflow.name, step.position)] = ActionRunner(
                    config.destination, settings, [step.subscribed], client, endpoint=endpoint or config.endpoint,
                    mail_guard=JournalMailGuard(journal, f"workflow:{workflow.name}"),
                    max_concurrency=config.max_concurrency, job_poll_seconds=config.job_poll_seconds,
                    job_timeout_seconds=config.job_timeout_seconds)

    async def perform(self, workflow: Workflow, step: Action, event: dict[str, Any], run: RunRow,
                      now: float, replay: bool = False) -> StepResult:
        runner = self._runners[(workflow.name, step.position)]
        planned = runner.plan(run.id, event, ignore_triggers=True)
        result = (await runner.run([planned], replay=replay, batch_requests=False))[0]  # a step: one call
        output: dict[str, Any] = {"status": result.status, **result.detail}
        if result.message:
            output["message"] = result.message
        return StepResult(result.kind, result.message, result.after, output)

    async def identify(self, workflow: Workflow, step: Identify, call: dict[str, Any], run: RunRow,
                       now: float) -> StepResult:
        if self._auth is None or self.segment_url is None:
            return StepResult(REJECTED, "no Segment write key configured (SEGMENT_WRITE_KEY): identify steps "
                              "cannot be sent")
        body = orjson.dumps({"batch": [call], "sentAt": call["timestamp"]})
        try:
            response = await self.client.post(f"{self.segment_url}/v1/batch", content=body, timeout=15.0,
                                              headers={"Content-Type": "application/json",
                                                       "Authorization": self._auth, "User-Agent": "sgbridge"})
        except httpx.HTTPError as exc:
            outcome = classify_error(exc)
        else:
            outcome = classify_response(response)
        if isinstance(outcome, Delivered):
            return StepResult(OK, output={"status": outcome.status_code, "messageId": call["messageId"]})
        if isinstance(outcome, Retry):
            return StepResult(RETRY, outcome.reason, outcome.after)
        return StepResult(REJECTED, getattr(outcome, "reason", "rejected"))


class SimulatedActions:
    """Nothing is sent: each action step is recorded with the payload its mapping builds."""

    def __init__(self) -> None:
        self.performed: list[dict[str, Any]] = []

    async def perform(self, workflow: Workflow, step: Action, event: dict[str, Any], run: RunRow,
                      now: float, replay: bool = False) -> StepResult:
        sub = step.subscribed
        assert sub is not None
        try:
            payload = build_payload(sub.action, sub.compiled, event)
        except Exception as exc:  # what the live action would reject
            return StepResult(REJECTED, f"{sub.name}: {exc}")
        record = {"run": run.id, "workflow": workflow.name, "key": run.run_key, "step": step.name,
                  "action": sub.name, "destination": step.destination, "at": now, "payload": payload}
        self.performed.append(record)
        return StepResult(OK, output={"simulated": True, "action": sub.name})

    async def identify(self, workflow: Workflow, step: Identify, call: dict[str, Any], run: RunRow,
                       now: float) -> StepResult:
        self.performed.append({"run": run.id, "workflow": workflow.name, "key": run.run_key, "step": step.name,
                               "action": "segment.identify", "destination": "segment", "at": now, "payload": call})
        return StepResult(OK, output={"simulated": True, "action": "segment.identify"})


def _actions(steps: tuple[Step, ...]) -> list[Action]:
    found: list[Action] = []
    for step in steps:
        if isinstance(step, Action):
            found.append(step)
        for branch in ("then", "otherwise", "on_timeout"):
            children = getattr(step, branch, None)
            if children:
                found += _actions(children)
    return found


_Outcome = tuple[str, float | None, str | None]  # how a run waits or ends: state, due_at, detail


def _dict(value: Any) -> dict[str, Any]:
    """A copy of an event's object field; {} when the event has none (or not an object)."""
    return dict(value) if isinstance(value, dict) else {}


def backoff(attempt: int, settings: WorkflowEngineSettings, asked: float | None) -> float:
    delay = min(settings.backoff_initial_seconds * 2 ** max(attempt - 1, 0), settings.backoff_max_seconds)
    return float(max(delay, asked or 0.0))


class Engine:
    def __init__(self, workflows: Mapping[str, Workflow], runs: WorkflowRuns, actions: ActionPort,
                 settings: WorkflowEngineSettings, profile_api: ProfileApi | None = None) -> None:
        self.workflows = workflows
        self.runs = runs
        self.actions = actions
        self.settings = settings
        self.profile_api = profile_api

    async def advance(self, run: RunRow, now: float, claimed_at: float) -> Writeback:
        """Run from the run's position until it waits or ends."""
        workflow = self.workflows.get(run.workflow)
        context = run.context
        steps_log: list[tuple[str, str, str, float, Any]] = []

        def back(state: str, position: Position | None, due_at: float | None = None, waiting_for: str | None = None,
                 detail: str | None = None, watch: str | None = None) -> Writeback:
            exits = list(workflow.exit_on_counters()) if workflow is not None else []
            # since: when the run was first taken up (run.updated_at, from claim_due: an earlier
            # process's claim if this one took it over), for the events that came meanwhile.
            return Writeback(state, position_text(position) if position else run.position, due_at, waiting_for,
                             context, detail, steps_log, watch, exits, min(claimed_at, run.updated_at))

        if workflow is None:
            return back(FAILED, None, detail=f"workflow {run.workflow!r} is no longer configured")
        position: Position | None = parse_position(run.position)
        outputs: dict[str, Any] = context.setdefault("steps", {})
        replaying = context.pop("replay", None)  # the step an operator's replay goes on from
        while True:
            if position is None:
                return back(COMPLETED, None, detail="completed")
            step = workflow.step_at(position)
            if step is None:
                return back(FAILED, None, detail=f"no step at {position_text(position)}: the workflow was changed "
                            "under a running run")
            here = position_text(position)
            if isinstance(step, Wait):
                if context.get("armed") == here:
                    timer = float(context.get("timer") or now)
                    if now < timer:  # taken over early (a lease passed): wait on
                        return back(WAITING, position, due_at=timer)
                    lateness = now - timer
                    metrics.WORKFLOW_TIMER_LATENESS.labels(workflow.name).observe(max(lateness, 0.0))
                    context.pop("armed", None)
                    context.pop("timer", None)
                    if workflow.max_lateness is not None and lateness > workflow.max_lateness:
                        steps_log.append((here, step.kind, "late", now, {"late_seconds": round(lateness, 3)}))
                        return back(LATE, position, detail=f"the timer of step {step.name} fired {lateness:.0f} s "
                                    f"late, past max_lateness")
                    steps_log.append((here, step.kind, "done", now, {"late_seconds": round(lateness, 3)}))
                    position = workflow.after(position)
                    continue
                due = await self._wait_until(step, run, now)
                if due is None or due <= now:
                    steps_log.append((here, step.kind, "skipped", now,
                                      {"reason": "no such trait" if due is None else "the time has passed"}))
                    position = workflow.after(position)
                    continue
                context["armed"], context["timer"] = here, due
                return back(WAITING, position, due_at=due)
            if isinstance(step, WaitFor):
                if context.get("armed") == here:
                    matched = context.pop("matched", None)
                    timeout_at: float | None = context.get("timer")
                    if matched is None and (timeout_at is None or now < float(timeout_at)):
                        return back(WAITING, position, due_at=timeout_at, waiting_for=here, watch=step.counter)
                    context.pop("armed", None)
                    context.pop("timer", None)
                    if matched is not None and "event" not in matched:
                        matched["event"] = await self._event_of(int(matched["seq"]))
                    outputs[step.name] = {"matched": matched is not None, **(matched or {})}
                    steps_log.append((here, step.kind, "done", now, outputs[step.name]))
                    branch = "then" if matched is not None else "on_timeout"
                    position = workflow.first_of(position, branch) or workflow.after(position)
                    continue
                context["armed"] = here
                context["timer"] = now + step.timeout if step.timeout is not None else None
                return back(WAITING, position, due_at=context["timer"], waiting_for=here, watch=step.counter)
            if isinstance(step, If):
                try:
                    result = await self._holds(step.condition, run, await self._document(run), now)
                except SubscriptionError as exc:
                    steps_log.append((here, step.kind, "failed", now, {"error": str(exc)}))
                    return back(FAILED, position, detail=f"step {step.name}: {exc}")
                outputs[step.name] = {"result": result}
                steps_log.append((here, step.kind, "done", now, outputs[step.name]))
                position = workflow.first_of(position, "then" if result else "else") or workflow.after(position)
                continue
            if isinstance(step, Lookup):
                try:
                    outputs[step.name] = await self._lookup(run)
                except ProfileApiUnavailable as exc:
                    again = self._again(run, step, str(exc), None, now, steps_log)
                    return back(again[0], position, due_at=again[1], detail=again[2])
                except ProfileApiRefused as exc:
                    steps_log.append((here, step.kind, "failed", now, {"message": str(exc)}))
                    return back(FAILED, position, detail=f"step {step.name}: {exc}")
                steps_log.append((here, step.kind, "done", now, {"traits": len(outputs[step.name])}))
                position = workflow.after(position)
                continue
            if isinstance(step, Action):
                outcome = await self._act(workflow, step, run, now, steps_log, replay=replaying == here)
                if outcome is None:
                    outputs[step.name] = steps_log[-1][4]
                    position = workflow.after(position)
                    continue
                state, due_at, detail = outcome
                return back(state, position, due_at=due_at, detail=detail)
            if isinstance(step, Identify):
                sent = await self._identify(workflow, step, run, now, steps_log)
                if sent is None:
                    outputs[step.name] = steps_log[-1][4]
                    position = workflow.after(position)
                    continue
                return back(sent[0], position, due_at=sent[1], detail=sent[2])
            assert isinstance(step, Exit)
            steps_log.append((here, step.kind, "done", now, {"reason": step.reason}))
            return back(EXITED, position, detail=f"exit step {step.name}: {step.reason}")

    async def _wait_until(self, step: Wait, run: RunRow, now: float) -> float | None:
        if step.seconds is not None:
            return now + step.seconds
        if step.until is not None:
            return step.until + step.offset
        traits = _dict((run.context.get("trigger") or {}).get("traits")) | await self.runs.profile(run.run_key)
        at = timestamp(traits.get(str(step.until_trait)))
        return None if at is None else at + step.offset

    async def _document(self, run: RunRow) -> dict[str, Any]:
        """What an ``if`` condition sees: the trigger event, its traits merged with the profile's,
        and the outputs of earlier steps under ``context.steps``."""
        trigger = dict(run.context.get("trigger") or {})
        profile = await self.runs.profile(run.run_key)
        trigger["traits"] = _dict(trigger.get("traits")) | profile
        trigger["context"] = _dict(trigger.get("context")) | {"steps": run.context.get("steps", {})}
        return trigger

    async def _holds(self, cond: Condition, run: RunRow, document: dict[str, Any], now: float) -> bool:
        if isinstance(cond, Fql):
            return cond.subscription.matches(document)
        if isinstance(cond, Count):
            if cond.since_trigger:  # after the trigger in the log (not counting it, nor its window's earlier events)
                n = await self.runs.count_after_async(run.run_key, cond.counter, run.trigger_seq)
            else:
                n = await self.runs.count_async(run.run_key, cond.counter, now - float(cond.within or 0), now)
            return (cond.at_least is None or n >= cond.at_least) and (cond.at_most is None or n <= cond.at_most)
        if isinstance(cond, AllOf):
            return all([await self._holds(p, run, document, now) for p in cond.parts])
        if isinstance(cond, AnyOf):
            return any([await self._holds(p, run, document, now) for p in cond.parts])
        assert isinstance(cond, Not)
        return not await self._holds(cond.part, run, document, now)

    async def _act(self, workflow: Workflow, step: Action, run: RunRow, now: float,
                   steps_log: list[tuple[str, str, str, float, Any]],
                   replay: bool = False) -> tuple[str, float | None, str | None] | None:
        """Do an action step; None when done (its output last in ``steps_log``), else how the run waits or ends.
        ``replay``: an operator replayed the run's dead letter (an email held for review is sent again)."""
        here = position_text(step.position)
        earlier = await self.runs.step_done_before(run.id, here)
        if earlier is not None:  # done before this process took the run over: not again
            steps_log.append((here, step.kind, "done", now, earlier))
            return None
        await self.runs.step_started(run.id, here, step.kind, now)
        event = await self._action_event(workflow, run, step)
        try:
            result = await self.actions.perform(workflow, step, event, run, now, replay=replay)
        except Exception as exc:  # ours or the network's: tried again like a transient failure
            log.exception("workflow %s run %d: action step %s failed", workflow.name, run.id, step.name)
            result = StepResult(RETRY, f"{type(exc).__name__}: {exc}")
        if result.kind == OK and step.subscribed is not None and step.subscribed.action.key in SUPPRESSIONS:
            await self._remember_suppression(step, event, now)
        if result.kind in (OK, DROPPED):
            output = result.output if result.kind == OK else {"dropped": result.message}
            steps_log.append((here, step.kind, "done" if result.kind == OK else "skipped", now, output))
            run.context.get("attempts", {}).pop(here, None)
            return None
        if result.kind == RETRY:
            return self._again(run, step, result.message, result.after, now, steps_log)
        if result.kind == HELD:
            detail = f"step {step.name}{HELD_MARK}{result.message}"
        else:
            assert result.kind == REJECTED
            detail = f"step {step.name}: rejected: {result.message}"
        steps_log.append((here, step.kind, "failed", now, {"message": result.message, **result.output}))
        return FAILED, None, detail

    async def _identify(self, workflow: Workflow, step: Identify, run: RunRow, now: float,
                        steps_log: list[tuple[str, str, str, float, Any]]) -> _Outcome | None:
        """Traits to Segment, as an identify call of the run's user (Segment dedupes on its messageId)."""
        here = position_text(step.position)
        event = await self._action_event(workflow, run, step)
        try:
            assert step.compiled is not None
            traits = step.compiled(event)
        except MappingError as exc:
            steps_log.append((here, step.kind, "failed", now, {"message": str(exc)}))
            return FAILED, None, f"step {step.name}: {exc}"
        trigger = run.context.get("trigger") or {}
        call: dict[str, Any] = {"type": "identify", "traits": traits if isinstance(traits, dict) else {},
                                "messageId": event["messageId"], "timestamp": iso_utc_ms(now),
                                "context": {"library": {"name": WORKFLOWS_LIBRARY, "version": __version__}}}
        for field_name in ("userId", "anonymousId"):
            if trigger.get(field_name) not in (None, ""):
                call[field_name] = trigger[field_name]
        if "userId" not in call and "anonymousId" not in call:
            steps_log.append((here, step.kind, "failed", now, {"message": "no userId or anonymousId"}))
            return FAILED, None, f"step {step.name}: the trigger event has no userId or anonymousId to identify"
        result = await self.actions.identify(workflow, step, call, run, now)
        if result.kind == OK:
            steps_log.append((here, step.kind, "done", now, result.output))
            run.context.get("attempts", {}).pop(here, None)
            return None
        if result.kind == RETRY:
            return self._again(run, step, result.message, result.after, now, steps_log)
        steps_log.append((here, step.kind, "failed", now, {"message": result.message}))
        return FAILED, None, f"step {step.name}: rejected: {result.message}"

    async def _remember_suppression(self, step: Action, event: dict[str, Any], now: float) -> None:
        """What a suppression step did to SendGrid, in the profile of the address: the suppression
        watch then takes the list's new entry for what it is (not an opt-out to send to Segment)."""
        assert step.subscribed is not None
        try:
            payload = build_payload(step.subscribed.action, step.subscribed.compiled, event)
        except Exception:  # it was just sent, so it builds; a failure here only costs the remembering
            log.warning("workflow step %s: the suppression could not be remembered", step.name, exc_info=True)
            return
        email, group = payload.get("email"), payload.get("group_id")
        if isinstance(email, str) and email:
            add = step.subscribed.action.key == "addSuppression"
            names = TraitNames(self.settings.trait_names)
            await self.runs.change_profile(f"email:{email.strip().lower()}", lambda traits: set_suppressed(
                traits, int(group) if isinstance(group, int) else None, add, names), now)

    def _again(self, run: RunRow, step: Step, message: str, after: float | None, now: float,
               steps_log: list[tuple[str, str, str, float, Any]]) -> tuple[str, float | None, str | None]:
        """A step that failed transiently: the run is due again after a backoff, or, after
        ``action_attempts`` tries, failed."""
        here = position_text(step.position)
        attempts = run.context.setdefault("attempts", {})
        attempts[here] = int(attempts.get(here, 0)) + 1
        if attempts[here] < self.settings.action_attempts:
            steps_log.append((here, step.kind, "retry", now, {"message": message, "attempt": attempts[here]}))
            return READY, now + backoff(attempts[here], self.settings, after), None
        steps_log.append((here, step.kind, "failed", now, {"message": message, "attempt": attempts[here]}))
        return FAILED, None, f"step {step.name}: not done after {attempts[here]} tries; last: {message}"

    async def _event_of(self, seq: int) -> dict[str, Any] | None:
        """The event of the log a wait_for matched, as workflows see it (None if pruned meanwhile)."""
        stored = await self.runs.stored_event(seq)
        call = segment_call(stored) if stored is not None else None
        return visible(call) if call is not None else None

    async def _lookup(self, run: RunRow) -> dict[str, Any]:
        """The profile: sgbridge's own, with Segment's traits over it when the Profile API is configured."""
        traits = await self.runs.profile(run.run_key)
        if self.profile_api is not None:
            traits |= await self.profile_api.traits(run.run_key) or {}
        return traits

    async def _action_event(self, workflow: Workflow, run: RunRow, step: Step) -> dict[str, Any]:
        """What an action step's mapping sees: the trigger event, with the profile's traits merged into
        ``traits`` and ``context.traits``, the profile under ``profile``, earlier outputs under ``steps``
        and, for a run a SendGrid opt-out started, the opt-out traits it set under ``opt_out``."""
        trigger = dict(run.context.get("trigger") or {})
        profile = await self.runs.profile(run.run_key)
        context = _dict(trigger.get("context"))
        context["traits"] = _dict(context.get("traits")) | profile
        return {**trigger, "traits": _dict(trigger.get("traits")) | profile, "context": context, "profile": profile,
                "steps": run.context.get("steps", {}), "opt_out": run.context.get("opt_out", {}),
                "messageId": message_id(workflow.name, run.id, step.position),
                "workflow": {"name": workflow.name, "run": run.id, "key": run.run_key}}


class WorkflowRunner:
    """The timer loop: take up due runs, advance them, write them back."""

    def __init__(self, engine: Engine, runs: WorkflowRuns, settings: WorkflowEngineSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.runs = runs
        self.settings = settings
        self.clock = clock
        self.owner = f"wf-{uuid.uuid4().hex[:12]}"
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run_once(self) -> int:
        """Advance every run due now (in batches); how many were advanced."""
        now = self.clock()
        due = await self.runs.claim_due(now, self.settings.batch_runs, self.owner, self.settings.lease_seconds)
        if not due:
            return 0
        limit = asyncio.Semaphore(64)

        async def one(run: RunRow) -> None:
            async with limit:
                at = self.clock()
                try:
                    result = await self.engine.advance(run, at, now)
                except Exception as exc:  # a bug or the journal: the run is tried again after its lease
                    log.exception("workflow %s run %d could not advance", run.workflow, run.id)
                    del exc
                    return
                stored = await self.runs.write_back(run, self.owner, result, self.clock())
                if stored in ENDED:
                    metrics.WORKFLOW_RUNS.labels(run.workflow, stored).inc()

        await asyncio.gather(*(one(r) for r in due))
        return len(due)

    async def take_replays(self) -> int:
        """Failed runs whose dead letters an operator replayed: due now, from the step that failed."""
        one_active = [w.name for w in self.engine.workflows.values() if w.reentry != "always"]
        return await self.runs.take_replays(self.clock(), one_active)

    async def prune(self) -> int:
        """Forget counted events older than ``history_seconds`` (no condition may look further back)."""
        return await self.runs.prune_history(self.clock() - self.settings.history_seconds)

    async def renew_leases(self) -> None:
        """While runs are in hand (an action step that takes long: a contacts import), their lease is
        renewed every third of ``lease_seconds``, so no other process takes them over meanwhile."""
        lease = self.settings.lease_seconds
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=lease / 3)
            try:
                await self.runs.renew_leases(self.owner, self.clock(), lease)
            except asyncio.CancelledError:
                raise
            except Exception:  # the journal is closing, or away for a moment: the next beat tries again
                log.warning("workflow leases could not be renewed", exc_info=True)

    async def run(self) -> None:
        renewing = asyncio.create_task(self.renew_leases())
        try:
            await self._loop()
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)

    async def _loop(self) -> None:
        pruned_at = counted_at = replays_at = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - replays_at > REPLAYS_EVERY_SECONDS:
                    replays_at = time.monotonic()
                    await self.take_replays()
                if time.monotonic() - pruned_at > PRUNE_EVERY_SECONDS:
                    pruned_at = time.monotonic()
                    await self.prune()
                if time.monotonic() - counted_at > GAUGE_EVERY_SECONDS:
                    counted_at = time.monotonic()
                    metrics.WORKFLOW_TIMERS_PENDING.set(await self.runs.timers_pending())
                advanced = await self.run_once()
                if advanced:
                    continue
                following = await self.runs.next_due()
                wait = self.settings.poll_seconds if following is None else \
                    min(max(following - self.clock(), 0.0), self.settings.poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the workflow runner failed; trying again in 1 s")
                wait = 1.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
