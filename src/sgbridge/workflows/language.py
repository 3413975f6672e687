"""The workflow language: a ``[[workflows]]`` entry compiled into steps the engine runs.

Steps (one kind key each, plus an optional ``name`` under which its output is kept):

- ``{ wait = "2h" }``, ``{ wait = { until = "2026-12-24T09:00:00Z" } }``,
  ``{ wait = { until_trait = "trial_ends_at", offset = "-1d" } }``
- ``{ wait_for = 'event = "Integration Connected"', timeout = "3d", then = [...], on_timeout = [...] }``
- ``{ if = <condition>, then = [...], else = [...] }``
- ``{ lookup = "profile" }``
- ``{ action = "sendEmail", destination = "<an [actions.NAME] entry>", mapping = {...} }``
- ``{ identify = { traits = { plan = { "@path" = "$.properties.plan" } } } }`` (traits to Segment)
- ``{ exit = "why" }``

A condition is a string in Segment's subscription syntax, or ``{ count = '<condition>', within =
"24h" | since = "trigger", at_least = N, at_most = N }``, or ``{ all = [...] }``, ``{ any = [...] }``,
``{ not = ... }``. Positions are paths into the steps: ``2``, ``3.then.0``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sgbridge.actions.runner import ConfigError as ActionConfigError
from sgbridge.actions.runner import Subscribed, check_subscription
from sgbridge.mappings import MappingError, SubscriptionError, validate_mapping
from sgbridge.mappings.compiled import CompiledMapping
from sgbridge.mappings.subscriptions import Subscription, parse_subscription
from sgbridge.workflows.settings import WorkflowSettings

Position = tuple[int | str, ...]
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"^\s*(-)?\s*((?:\d+(?:\.\d+)?\s*[smhdw]\s*)+)$")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
KINDS = ("wait", "wait_for", "if", "lookup", "action", "identify", "exit")


class WorkflowConfigError(ValueError):
    """A workflow that cannot work; the message starts with the path of the bad key."""


def duration(value: Any, path: str, signed: bool = False) -> float:
    """Seconds from ``"90s"``, ``"2h"``, ``"1d12h"``, ``"1w"`` or a number of seconds."""
    if isinstance(value, bool):
        raise WorkflowConfigError(f"{path}: a duration such as \"2h\", \"30m\" or \"3d\", not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(match.group(2)))
        seconds = -seconds if match.group(1) else seconds
    else:
        raise WorkflowConfigError(f"{path}: a duration such as \"2h\", \"30m\" or \"3d\", not {value!r}")
    if seconds < 0 and not signed:
        raise WorkflowConfigError(f"{path}: must not be negative")
    return seconds


def timestamp(value: Any) -> float | None:
    """Epoch seconds from an ISO 8601 text (with ``Z`` or an offset; UTC if none) or a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1000.0 if value > 1e11 else float(value)  # milliseconds, as some SDKs send
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else value.replace(tzinfo=_utc()).timestamp()
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo else parsed.replace(tzinfo=_utc()).timestamp()


def _utc() -> Any:
    from datetime import UTC

    return UTC


# -- conditions --------------------------------------------------------------------------
@dataclass(frozen=True)
class Fql:
    subscription: Subscription


@dataclass(frozen=True)
class Count:
    counter: str  # the condition's text: the key of its rows in wf_history
    subscription: Subscription
    within: float | None  # seconds back from now; None with since_trigger
    since_trigger: bool
    at_least: int | None
    at_most: int | None


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


Condition = Fql | Count | AllOf | AnyOf | Not


def _fql(text: Any, path: str) -> Subscription:
    if not isinstance(text, str):
        raise WorkflowConfigError(f"{path}: a condition in Segment's subscription syntax, e.g. "
                                  f"'event = \"Order Completed\"', not {type(text).__name__}")
    try:
        return parse_subscription(text)
    except SubscriptionError as exc:
        raise WorkflowConfigError(f"{path}: {exc}") from None


def _only(table: Mapping[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise WorkflowConfigError(f"{path}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")


def condition(value: Any, path: str) -> Condition:
    if isinstance(value, str):
        return Fql(_fql(value, path))
    if not isinstance(value, dict) or not value:
        raise WorkflowConfigError(f"{path}: a condition: a subscription string, or a table with count, all, any "
                                  "or not")
    if "count" in value:
        _only(value, {"count", "within", "since", "at_least", "at_most"}, path)
        if ("within" in value) == ("since" in value):
            raise WorkflowConfigError(f"{path}: a count needs within = \"24h\" or since = \"trigger\" (one of them)")
        if "since" in value and value["since"] != "trigger":
            raise WorkflowConfigError(f"{path}.since: only \"trigger\" (events since the run started)")
        bounds = {}
        for bound in ("at_least", "at_most"):
            if bound in value:
                if not isinstance(value[bound], int) or isinstance(value[bound], bool) or value[bound] < 0:
                    raise WorkflowConfigError(f"{path}.{bound}: a whole number ≥ 0")
                bounds[bound] = int(value[bound])
        if not bounds:
            raise WorkflowConfigError(f"{path}: a count needs at_least or at_most")
        return Count(str(value["count"]).strip(), _fql(value["count"], f"{path}.count"),
                     duration(value["within"], f"{path}.within") if "within" in value else None,
                     "since" in value, bounds.get("at_least"), bounds.get("at_most"))
    if len(value) != 1:
        raise WorkflowConfigError(f"{path}: one of count, all, any or not per table")
    (kind, inner), = value.items()
    if kind in ("all", "any"):
        if not isinstance(inner, list) or not inner:
            raise WorkflowConfigError(f"{path}.{kind}: a non-empty list of conditions")
        parts = tuple(condition(c, f"{path}.{kind}[{i}]") for i, c in enumerate(inner))
        return AllOf(parts) if kind == "all" else AnyOf(parts)
    if kind == "not":
        return Not(condition(inner, f"{path}.not"))
    raise WorkflowConfigError(f"{path}.{kind}: unknown key (a condition table has count, all, any or not)")


def counts_of(cond: Condition | None) -> Iterator[Count]:
    if isinstance(cond, Count):
        yield cond
    elif isinstance(cond, AllOf | AnyOf):
        for part in cond.parts:
            yield from counts_of(part)
    elif isinstance(cond, Not):
        yield from counts_of(cond.part)


# -- steps --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    kind: str
    name: str
    position: Position


@dataclass(frozen=True)
class Wait(Step):
    seconds: float | None = None
    until: float | None = None
    until_trait: str | None = None
    offset: float = 0.0


@dataclass(frozen=True)
class WaitFor(Step):
    subscription: Subscription = field(default_factory=lambda: parse_subscription("all"))
    counter: str = ""
    timeout: float | None = None
    then: tuple[Step, ...] | None = None
    on_timeout: tuple[Step, ...] | None = None


@dataclass(frozen=True)
class If(Step):
    condition: Condition = field(default_factory=lambda: Fql(parse_subscription("all")))
    then: tuple[Step, ...] = ()
    otherwise: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Lookup(Step):
    source: str = "profile"


@dataclass(frozen=True)
class Action(Step):
    destination: str = ""
    subscribed: Subscribed | None = None


@dataclass(frozen=True)
class Identify(Step):
    traits: dict[str, Any] = field(default_factory=dict)  # a mapping (Segment's mapping syntax)
    compiled: CompiledMapping | None = None


@dataclass(frozen=True)
class Exit(Step):
    reason: str = ""


def position_text(position: Position) -> str:
    return ".".join(str(p) for p in position)


def parse_position(text: str) -> Position:
    return tuple(int(p) if p.isdigit() else p for p in text.split(".")) if text else ()


@dataclass
class Workflow:
    """A compiled workflow: what the intake matches and the engine runs."""

    name: str
    trigger: Subscription
    when: Condition | None
    keys: tuple[str, ...]
    reentry: str
    exit_on: tuple[Subscription, ...]
    steps: tuple[Step, ...]
    max_lateness: float | None
    enabled: bool
    counters: dict[str, Subscription] = field(default_factory=dict)  # what wf_history records, by counter

    def longest_count(self) -> float:
        """The longest ``within`` of its counts (seconds; 0 if none)."""
        conditions = [self.when, *(s.condition for s in _walk(self.steps) if isinstance(s, If))]
        return max((c.within or 0.0 for cond in conditions for c in counts_of(cond)), default=0.0)

    def exit_on_counters(self) -> list[str]:
        return [sub.text.strip() for sub in self.exit_on]

    def step_at(self, position: Position) -> Step | None:
        steps: tuple[Step, ...] = self.steps
        step: Step | None = None
        index = 0
        while index < len(position):
            number = position[index]
            if not isinstance(number, int) or number >= len(steps):
                return None
            step = steps[number]
            if index + 1 == len(position):
                return step
            branch = position[index + 1]
            children = getattr(step, "otherwise" if branch == "else" else str(branch), None)
            if not isinstance(children, tuple):
                return None
            steps = children
            index += 2
        return step

    def after(self, position: Position) -> Position | None:
        """The position that follows a finished step: its next sibling, or its parent's."""
        while position:
            siblings = self._siblings(position[:-1])
            last = position[-1]
            assert isinstance(last, int)
            if last + 1 < len(siblings):
                return (*position[:-1], last + 1)
            position = position[:-2]  # out of the branch: after the step that holds it
        return None

    def _siblings(self, branch: Position) -> tuple[Step, ...]:
        if not branch:
            return self.steps
        holder = self.step_at(branch[:-1])
        children = getattr(holder, "otherwise" if branch[-1] == "else" else str(branch[-1]), None)
        return children if isinstance(children, tuple) else ()

    def first_of(self, position: Position, branch: str) -> Position | None:
        """The first step of a step's branch; None if the branch is absent or empty."""
        step = self.step_at(position)
        children = getattr(step, "otherwise" if branch == "else" else branch, None)
        return (*position, branch, 0) if children else None


def compile_workflow(config: WorkflowSettings, path: str, destinations: Mapping[str, str]) -> Workflow:
    """Check and compile one workflow. ``destinations``: the configured action destinations'
    names and kinds (``[actions.NAME]``), which action steps send through."""
    trigger = _fql(config.trigger, f"{path}.trigger")
    when = condition(config.when, f"{path}.when") if config.when is not None else None
    exit_on = tuple(_fql(c, f"{path}.exit_on[{i}]") for i, c in enumerate(config.exit_on))
    if not config.key:
        raise WorkflowConfigError(f"{path}.key: at least one of userId, anonymousId, email or a dotted path")
    if not config.steps:
        raise WorkflowConfigError(f"{path}.steps: a workflow needs at least one step")
    names: set[str] = set()
    steps = _steps(config.steps, f"{path}.steps", (), destinations, names)
    workflow = Workflow(config.name, trigger, when, tuple(config.key), config.reentry, exit_on, steps,
                        duration(config.max_lateness, f"{path}.max_lateness") if config.max_lateness else None,
                        config.enabled)
    for count in counts_of(when):
        if count.since_trigger:
            raise WorkflowConfigError(f"{path}.when: a trigger's count takes within = \"…\" (there is no run yet)")
        workflow.counters[count.counter] = count.subscription
    for sub in exit_on:
        workflow.counters[sub.text.strip()] = sub
    for step in _walk(steps):
        if isinstance(step, If):
            for count in counts_of(step.condition):
                workflow.counters[count.counter] = count.subscription
        elif isinstance(step, WaitFor):
            workflow.counters[step.counter] = step.subscription
    return workflow


def _walk(steps: tuple[Step, ...]) -> Iterator[Step]:
    for step in steps:
        yield step
        for branch in ("then", "otherwise", "on_timeout"):
            children = getattr(step, branch, None)
            if children:
                yield from _walk(children)


def _steps(items: Any, path: str, at: Position, destinations: Mapping[str, str], names: set[str]) -> tuple[Step, ...]:
    if not isinstance(items, list):
        raise WorkflowConfigError(f"{path}: a list of steps")
    return tuple(_step(item, f"{path}[{i}]", (*at, i), destinations, names) for i, item in enumerate(items))


def _step(item: Any, path: str, position: Position, destinations: Mapping[str, str], names: set[str]) -> Step:
    if not isinstance(item, dict):
        raise WorkflowConfigError(f"{path}: a step is a table with one of {', '.join(KINDS)}")
    kinds = [k for k in KINDS if k in item]
    if len(kinds) != 1:
        found = f"{', '.join(kinds)}" if kinds else "none"
        raise WorkflowConfigError(f"{path}: a step has exactly one of {', '.join(KINDS)} (found: {found})")
    kind = kinds[0]
    name = item.get("name", f"{kind}_{position_text(position).replace('.', '_')}")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
        raise WorkflowConfigError(f"{path}.name: letters, digits and '_' (it names the step's output)")
    if name in names:
        raise WorkflowConfigError(f"{path}.name: {name!r} names another step of this workflow")
    names.add(name)
    value = item[kind]
    where = f"{path}.{kind}"
    if kind == "wait":
        _only(item, {"wait", "name"}, path)
        if isinstance(value, dict):
            _only(value, {"until", "until_trait", "offset"}, where)
            if ("until" in value) == ("until_trait" in value):
                raise WorkflowConfigError(f"{where}: a duration, or a table with until or until_trait")
            offset = duration(value.get("offset", 0), f"{where}.offset", signed=True)
            if "until" in value:
                until = timestamp(value["until"])
                if until is None:
                    raise WorkflowConfigError(f"{where}.until: an ISO 8601 time such as 2026-12-24T09:00:00Z")
                return Wait(kind, name, position, until=until, offset=offset)
            if not isinstance(value["until_trait"], str) or not value["until_trait"]:
                raise WorkflowConfigError(f"{where}.until_trait: the name of a date trait of the profile")
            return Wait(kind, name, position, until_trait=value["until_trait"], offset=offset)
        return Wait(kind, name, position, seconds=duration(value, where))
    if kind == "wait_for":
        _only(item, {"wait_for", "name", "timeout", "then", "on_timeout"}, path)
        sub = _fql(value, where)
        timeout = duration(item["timeout"], f"{path}.timeout") if "timeout" in item else None
        then = _steps(item["then"], f"{path}.then", (*position, "then"), destinations, names) \
            if "then" in item else None
        on_timeout = _steps(item["on_timeout"], f"{path}.on_timeout", (*position, "on_timeout"), destinations,
                            names) if "on_timeout" in item else None
        if on_timeout is not None and timeout is None:
            raise WorkflowConfigError(f"{path}.on_timeout: needs a timeout")
        return WaitFor(kind, name, position, sub, sub.text.strip(), timeout, then, on_timeout)
    if kind == "if":
        _only(item, {"if", "name", "then", "else"}, path)
        return If(kind, name, position, condition(value, where),
                  _steps(item.get("then", []), f"{path}.then", (*position, "then"), destinations, names),
                  _steps(item.get("else", []), f"{path}.else", (*position, "else"), destinations, names))
    if kind == "lookup":
        _only(item, {"lookup", "name"}, path)
        if value != "profile":
            raise WorkflowConfigError(f"{where}: \"profile\" (the traits sgbridge keeps for the run's key)")
        return Lookup(kind, name, position, source="profile")
    if kind == "action":
        _only(item, {"action", "name", "destination", "mapping", "use_defaults"}, path)
        destination = item.get("destination")
        if not isinstance(destination, str) or destination not in destinations:
            known = ", ".join(sorted(destinations)) or "none configured"
            raise WorkflowConfigError(f"{path}.destination: the name of an [actions.NAME] destination whose "
                                      f"settings (API key, endpoint) the step uses ({known})")
        mapping = item.get("mapping", {})
        try:
            subscribed = check_subscription(path, destinations[destination], str(value), mapping, None,
                                            bool(item.get("use_defaults", True)), require_trigger=False)
        except ActionConfigError as exc:
            raise WorkflowConfigError(str(exc).replace(f"{path}.action: ", f"{path}.action: ", 1)) from None
        return Action(kind, name, position, destination=str(destination), subscribed=subscribed)
    if kind == "identify":
        _only(item, {"identify", "name"}, path)
        if not isinstance(value, dict) or set(value) != {"traits"} or not isinstance(value["traits"], dict) \
                or not value["traits"]:
            raise WorkflowConfigError(f"{where}: a table {{ traits = {{ name = <mapping>, ... }} }}")
        try:
            validate_mapping(value["traits"])
        except MappingError as exc:
            issue = exc.issues[0] if exc.issues else None
            at = ".".join((f"{where}.traits", *issue.path)) if issue else f"{where}.traits"
            raise WorkflowConfigError(f"{at}: {issue.problem if issue else exc}") from None
        return Identify(kind, name, position, traits=dict(value["traits"]), compiled=CompiledMapping(value["traits"]))
    _only(item, {"exit", "name"}, path)
    return Exit(kind, name, position, reason=str(value) if not isinstance(value, bool) else "exit step")
