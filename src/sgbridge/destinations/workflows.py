"""Every stored event → the workflows: profiles, counted events, exits, wait_for matches, new runs.

The workflows' intake is one more consumer of the log on the delivery engine (claims, cursor,
dead letters for an event it cannot read), reading both streams: Segment's events and SendGrid's
as the track calls they become. One window at a time across every process (an exclusive claim:
with several ``workflows`` processes on PostgreSQL, one applies the log while the others fire
timers), and each window in one journal transaction, so events reach runs in each key's order
and a crash redoes a window whole: runs are unique per trigger event, counted events per seq, and
a profile remembers the last seq it took.
Nothing here waits on an API: the runner (workflows/engine.py) does the steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sgbridge.delivery import metrics
from sgbridge.destinations.actions import Settled
from sgbridge.journal import Journal
from sgbridge.journal.workflow_runs import EXITED, READY, WAITING, WorkflowRuns
from sgbridge.mappings import SubscriptionError
from sgbridge.mappings._js import to_string
from sgbridge.mappings.subscriptions import Subscription
from sgbridge.model import StoredEvent
from sgbridge.settings import Settings
from sgbridge.workflows.documents import TraitNames, apply_to_profile, key_of, opt_out_traits, segment_call, visible
from sgbridge.workflows.language import AllOf, AnyOf, Condition, Count, Fql, Not, WaitFor, Workflow, parse_position

NAME = "workflows"
log = logging.getLogger(__name__)


@dataclass(slots=True)
class Planned:
    seq: int
    call: dict[str, Any] | None  # the Segment call; None: nothing for workflows (a dropped SendGrid event)


def _required(sub: Subscription) -> str:
    required = _EVENT_NAME.get(sub.text)
    if required is None:
        required = _EVENT_NAME[sub.text] = _required_event(sub)
    return required


def _matches(sub: Subscription, document: dict[str, Any]) -> bool:
    required = _required(sub)
    if required and document.get("event") != required:
        return False  # what validate would answer, without walking the condition
    try:
        return sub.matches(document)
    except SubscriptionError:  # Segment's validate throws on some shapes: no match, as Segment skips it
        return False


_EVENT_NAME: dict[str, str] = {}  # a condition's text -> the event name it requires ("" if none)


def _required_event(sub: Subscription) -> str:
    """The event name a condition cannot match without: an ``event = "X"`` among the conditions of
    its top-level ``and`` ("" when there is none). Most triggers and counts name their event, so
    the intake skips most conditions of most events at one comparison."""
    ast = sub.ast
    if ast is None or ast.get("operator") != "and":
        return ""
    for child in ast.get("children") or []:
        if isinstance(child, dict) and child.get("type") == "event" and child.get("operator") == "=":
            return to_string(child.get("value"))
    return ""


@dataclass(slots=True)
class _Run:
    id: int
    workflow: str
    key: str
    state: str
    waiting_for: str | None


class WorkflowIntake:
    name = NAME
    stream: int | None = None  # both streams
    # One window in flight across all processes (several `--role workflows` on PostgreSQL): windows
    # are applied in log order, so profiles and runs see each key's events in order.
    exclusive = True

    def __init__(self, settings: Settings, workflows: Mapping[str, Workflow], journal: Journal,
                 clock: Callable[[], float] = time.time, on_ready: Callable[[], None] | None = None) -> None:
        self.workflows = workflows
        self.journal = journal
        self.runs = WorkflowRuns(journal)
        self.clock = clock
        self.on_ready = on_ready
        self._user_id_arg = {name: s.user_id_arg for name, s in settings.sources.items()}
        self.names = TraitNames(settings.workflow_engine.trait_names)
        # Audience reconciles read the membership the profiles of addresses recorded,
        # and the suppression watch the opt-outs they know.
        reconciled = {("email",)} if settings.audience_reconcile or settings.suppression_watch.enabled else set()
        self._key_configs = sorted({w.keys for w in workflows.values()} | reconciled)
        # By the event name a condition requires ("" for none): an event is tested against the
        # conditions that can match it only.
        self._counters: dict[str, dict[str, tuple[Subscription, list[tuple[str, ...]]]]] = {}
        for workflow in workflows.values():
            for counter, sub in workflow.counters.items():
                entry = self._counters.setdefault(_required(sub), {}).setdefault(counter, (sub, []))
                if workflow.keys not in entry[1]:
                    entry[1].append(workflow.keys)
        self._triggers: dict[str, list[Workflow]] = {}
        for workflow in workflows.values():
            if workflow.enabled:
                self._triggers.setdefault(_required(workflow.trigger), []).append(workflow)
        self._order = {name: i for i, name in enumerate(workflows)}

    def consumes(self, source: str) -> bool:
        return True

    def plan(self, stored: StoredEvent) -> Planned:
        return Planned(stored.seq, segment_call(stored, self._user_id_arg.get(stored.source, "segment_user_id")))

    def begin(self, window: int, planned: Sequence[Any]) -> None:
        pass

    def end(self, window: int) -> None:
        pass

    async def deliver(self, events: Sequence[StoredEvent], replay: bool = False,
                      window: int | None = None) -> list[Settled]:
        planned = [self.plan(e) for e in events]
        now = self.clock()
        ready = await self.journal.run(lambda conn: self.apply(conn, planned, now))
        if ready and self.on_ready is not None:
            self.on_ready()
        return [Settled(e.seq, None) for e in events]

    def apply(self, conn: Any, planned: Sequence[Planned], now: float) -> int:
        """Apply a window's events in order, in the caller's transaction; how many runs became ready."""
        calls = [(p.seq, visible(p.call), p.call) for p in planned if p.call is not None]
        keys_of = [{keys: key_of(doc, keys) for keys in self._key_configs} for _, doc, _ in calls]
        every_key = sorted({k for keys in keys_of for k in keys.values() if k is not None})
        if not every_key:
            return 0
        profiles = self.runs.profiles(conn, every_key)
        changed: set[str] = set()
        active: dict[str, list[_Run]] = {}
        for run_id, workflow, key, state, waiting_for in self.runs.active_runs(conn, every_key):
            active.setdefault(key, []).append(_Run(run_id, workflow, key, state, waiting_for))
        ready = 0
        for (seq, doc, call), keys in zip(calls, keys_of, strict=True):
            for key in {k for k in keys.values() if k is not None}:
                traits, last = profiles.get(key, ({}, 0))
                if seq > last:
                    apply_to_profile(traits, call, self.names)
                    profiles[key] = (traits, seq)
                    changed.add(key)
            self._count(conn, seq, doc, keys, now)
            ready += self._hand_over(conn, seq, doc, keys, active, now)
            ready += self._start(conn, seq, doc, keys, active, now, opt_out_traits(call, self.names))
        self.runs.save_profiles(conn, [(k, *profiles[k]) for k in sorted(changed)], now)
        return ready

    def _count(self, conn: Any, seq: int, doc: dict[str, Any], keys: dict[tuple[str, ...], str | None],
               now: float) -> None:
        rows: set[tuple[str, str, float, int]] = set()
        event = doc.get("event")
        for group in (self._counters.get(event, {}) if isinstance(event, str) and event else {},
                      self._counters.get("", {})):
            for counter, (sub, key_configs) in group.items():
                if not _matches(sub, doc):
                    continue
                for key_config in key_configs:
                    key = keys[key_config]
                    if key is not None:
                        rows.add((key, counter, now, seq))
        if rows:
            self.runs.record_history(conn, sorted(rows))

    def _hand_over(self, conn: Any, seq: int, doc: dict[str, Any], keys: dict[tuple[str, ...], str | None],
                   active: dict[str, list[_Run]], now: float) -> int:
        """Exits and wait_for matches of the key's active runs (a run taken up by the runner finds
        them in wf_history when it is written back)."""
        ready = 0
        for key in {k for k in keys.values() if k is not None}:
            for run in list(active.get(key, [])):
                workflow = self.workflows.get(run.workflow)
                if workflow is None or keys.get(workflow.keys) != key or run.state not in (READY, WAITING):
                    continue
                exit_hit = next((sub for sub in workflow.exit_on if _matches(sub, doc)), None)
                if exit_hit is not None:
                    if self.runs.end_runs(conn, [run.id], EXITED, f"exit_on matched event {seq}: {exit_hit.text}",
                                          now):
                        metrics.WORKFLOW_RUNS.labels(workflow.name, EXITED).inc()
                    active[key].remove(run)
                    continue
                if run.state == WAITING and run.waiting_for is not None:
                    step = workflow.step_at(parse_position(run.waiting_for))
                    if isinstance(step, WaitFor) and _matches(step.subscription, doc) and self.runs.signal(
                            conn, run.id, run.waiting_for, {"seq": seq, "event": doc}, now):
                        run.state, run.waiting_for = READY, None
                        ready += 1
        return ready

    def _start(self, conn: Any, seq: int, doc: dict[str, Any], keys: dict[tuple[str, ...], str | None],
               active: dict[str, list[_Run]], now: float, opt_out: dict[str, Any]) -> int:
        started = 0
        event = doc.get("event")
        named = self._triggers.get(event, []) if isinstance(event, str) and event else []
        candidates = named + self._triggers.get("", [])
        if named and len(candidates) > len(named):
            candidates.sort(key=lambda w: self._order[w.name])  # runs start in the config's order
        for workflow in candidates:
            if not _matches(workflow.trigger, doc):
                continue
            key = keys[workflow.keys]
            if key is None:
                continue
            if workflow.when is not None and not self._holds(conn, workflow.when, key, doc, now):
                continue
            one_active = workflow.reentry != "always"
            if one_active and any(r.workflow == workflow.name for r in active.get(key, [])):
                continue
            if workflow.reentry == "never" and self.runs.has_run(conn, workflow.name, key):
                continue
            context: dict[str, Any] = {"trigger": doc, "steps": {}}
            if opt_out:  # what a SendGrid opt-out event changed ($.opt_out of identify steps)
                context["opt_out"] = opt_out
            run_id = self.runs.start_run(conn, workflow.name, key, seq, now, context, one_active)
            if run_id is not None:
                active.setdefault(key, []).append(_Run(run_id, workflow.name, key, READY, None))
                metrics.WORKFLOW_RUNS.labels(workflow.name, "started").inc()
                started += 1
        return started

    def _holds(self, conn: Any, cond: Condition, key: str, doc: dict[str, Any], now: float) -> bool:
        if isinstance(cond, Fql):
            return _matches(cond.subscription, doc)
        if isinstance(cond, Count):
            n = self.runs.count(conn, key, cond.counter, now - float(cond.within or 0), now)
            return (cond.at_least is None or n >= cond.at_least) and (cond.at_most is None or n <= cond.at_most)
        if isinstance(cond, AllOf):
            return all(self._holds(conn, p, key, doc, now) for p in cond.parts)
        if isinstance(cond, AnyOf):
            return any(self._holds(conn, p, key, doc, now) for p in cond.parts)
        assert isinstance(cond, Not)
        return not self._holds(conn, cond.part, key, doc, now)
