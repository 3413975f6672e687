"""One destination instance: its settings and subscriptions, planning events and running them.

A *subscription* is Segment's word for one configured action: which action, its trigger, its
field mappings. ``ActionRunner`` owns one destination's subscriptions and one API client, so
``sgbridge actions test`` (one action, events from a file) and the delivery engine (every
subscription, events from the journal) run exactly the same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from sgbridge.actions.catalog import GLOBAL_ENDPOINT, ActionSpec, find_action, find_destination
from sgbridge.actions.dotdigital.api import DEFAULT_HOST as DOTDIGITAL_HOST
from sgbridge.actions.dotdigital.api import DotdigitalApi
from sgbridge.actions.dotdigital.plans import PLANNERS as DOTDIGITAL_PLANNERS
from sgbridge.actions.dotdigital.plans import audience_membership
from sgbridge.actions.dotdigital.steps import run_dotdigital
from sgbridge.actions.executor import Context, MailGuard, PhaseRunner, execute
from sgbridge.actions.http import ApiClient
from sgbridge.actions.operations import Invalid, Operation, PlannedEvent, Skip
from sgbridge.actions.payload import build_payload, effective_mapping
from sgbridge.actions.results import REJECTED, RETRY, EventResult
from sgbridge.actions.schema import PayloadInvalid
from sgbridge.actions.sendgrid.api import Rejection, RequestHook, SendGridApi, Transient
from sgbridge.actions.sendgrid.audience_lists import AudienceLists, needs_list, with_list_placeholder
from sgbridge.actions.sendgrid.mail import run_mail
from sgbridge.actions.sendgrid.plans import PLANNERS as SENDGRID_PLANNERS
from sgbridge.actions.sendgrid.plans import says_membership
from sgbridge.actions.sendgrid.removals import run_list_removals
from sgbridge.actions.sendgrid.suppressions import run_suppressions
from sgbridge.actions.sendgrid.upserts import run_upserts
from sgbridge.actions.twilio.sms import PLANNERS as TWILIO_PLANNERS
from sgbridge.actions.twilio.sms import TwilioApi, run_sms
from sgbridge.actions.webhook import plan_send, run_http_calls
from sgbridge.mappings import MappingError, SubscriptionError, validate_mapping
from sgbridge.mappings.compiled import CompiledMapping
from sgbridge.mappings.subscriptions import Subscription, parse_subscription

# The API family of each destination, and its phases' runners (actions.operations: phases).
FAMILIES = {"sendgrid": "sendgrid", "sendgrid-audiences": "sendgrid", "webhook": "sendgrid", "dotdigital": "dotdigital",
            "dotdigital-audiences": "dotdigital", "twilio": "twilio"}
RUNNERS: dict[str, dict[int, PhaseRunner]] = {
    "sendgrid": {0: run_upserts, 1: run_list_removals, 2: run_suppressions, 3: run_suppressions, 4: run_mail,
                 5: run_http_calls},
    "dotdigital": {6: run_dotdigital},
    "twilio": {7: run_sms},
}
PLANNERS = {**SENDGRID_PLANNERS, **DOTDIGITAL_PLANNERS, **TWILIO_PLANNERS}


class ConfigError(ValueError):
    """A destination or subscription that cannot work; the message starts with the path of the bad key."""


@dataclass
class Subscribed:
    """One configured action, checked: its spec, full mapping and parsed trigger."""

    name: str
    action: ActionSpec
    mapping: dict[str, Any]
    trigger: Subscription | None
    compiled: CompiledMapping
    batching: bool = True  # Segment's "Enable Batching": performBatch (an array), else perform


def check_subscription(path: str, destination: str, action: str, mapping: dict[str, Any] | None,
                       trigger: str | None, use_defaults: bool = True, require_trigger: bool = True,
                       enable_batching: bool = True) -> Subscribed:
    """Validate one subscription now (start-up), reporting ``path.key: problem``."""
    try:
        spec = find_action(destination, action)
    except LookupError as exc:
        raise ConfigError(f"{path}.action: {exc}") from None
    if mapping is not None and not isinstance(mapping, dict):
        raise ConfigError(f"{path}.mapping: must be an object of field -> mapping")
    full = effective_mapping(spec, mapping or {}, use_defaults)
    unknown = [k for k in full if k not in spec.fields]
    if unknown:
        raise ConfigError(f"{path}.mapping.{unknown[0]}: {spec.destination}.{spec.key} has no field {unknown[0]!r} "
                          f"(fields: {', '.join(spec.fields)})")
    try:
        validate_mapping(full)
    except MappingError as exc:
        issue = exc.issues[0] if exc.issues else None
        where = ".".join((f"{path}.mapping", *issue.path)) if issue else f"{path}.mapping"
        raise ConfigError(f"{where}: {issue.problem if issue else exc}") from None
    parsed = None
    if trigger is not None:
        try:
            parsed = parse_subscription(trigger)
        except SubscriptionError as exc:
            raise ConfigError(f"{path}.trigger: {exc}") from None
    elif spec.default_subscription:
        parsed = parse_subscription(spec.default_subscription)
    elif require_trigger:  # as in Segment's UI: an action without a default trigger needs one
        raise ConfigError(f"{path}.trigger: required ({spec.destination}.{spec.key} has no default trigger), "
                          "e.g. 'type = \"identify\"' or 'all'")
    return Subscribed(f"{spec.destination}.{spec.key}", spec, full, parsed, CompiledMapping(full), enable_batching)


class ActionRunner:
    def __init__(self, destination: str, settings: dict[str, Any], subscriptions: Sequence[Subscribed],
                 client: httpx.AsyncClient, *, endpoint: str | None = None, on_request: RequestHook | None = None,
                 mail_guard: MailGuard | None = None, max_concurrency: int = 4,
                 clock: Callable[[], float] = time.time, job_poll_seconds: float = 0.5,
                 job_timeout_seconds: float = 600.0) -> None:
        self.destination = destination
        self.settings = settings
        self.subscriptions = list(subscriptions)
        self.clock = clock
        self.family = FAMILIES.get(find_destination(destination).key, "sendgrid")
        self.api: ApiClient
        self.audience_lists: AudienceLists | None = None
        if self.family == "twilio":
            self.api = TwilioApi.from_settings(client, settings, endpoint, max_concurrency=max_concurrency,
                                               on_request=on_request)
        elif self.family == "dotdigital":
            host = endpoint or settings.get("api_host") or DOTDIGITAL_HOST
            self.api = DotdigitalApi.with_login(client, str(settings.get("username") or ""),
                                                str(settings.get("password") or ""), str(host),
                                                max_concurrency=max_concurrency, on_request=on_request)
        else:
            api_key = str(settings.get("sendGridApiKey") or "")
            base = endpoint or settings.get("endpoint") or GLOBAL_ENDPOINT
            sendgrid = SendGridApi.with_key(client, api_key, str(base), max_concurrency=max_concurrency,
                                            on_request=on_request)
            self.api, self.audience_lists = sendgrid, AudienceLists(sendgrid)
        self.runners = RUNNERS[self.family]
        self.context = Context(self.api, client, mail_guard or MailGuard(), job_poll_seconds=job_poll_seconds,
                               job_timeout_seconds=job_timeout_seconds, webhook_on_request=on_request)

    def plan(self, ref: int, event: dict[str, Any], *, ignore_triggers: bool = False) -> PlannedEvent:
        """Every matching subscription's operations for one event (none: the event is not for us)."""
        planned = PlannedEvent(ref, order_key=_user_of(event))
        for sub in self.subscriptions:
            try:
                if not ignore_triggers and sub.trigger is not None and not sub.trigger.matches(event):
                    continue
                planned.operations.extend(self._operations(sub, event))
                planned.chain_ends.append(len(planned.operations))
            except Skip as exc:
                planned.skipped = str(exc)
            except Invalid as exc:
                planned.invalid = exc
            except PayloadInvalid as exc:
                planned.invalid = Invalid(str(exc))
            except (MappingError, SubscriptionError) as exc:
                planned.invalid = Invalid(f"{sub.name}: {exc}", "MAPPING_FAILED")
            if planned.invalid is not None:
                planned.operations.clear()
                break
        return planned

    def _operations(self, sub: Subscribed, event: dict[str, Any]) -> list[Operation]:
        if sub.action.destination in ("sendgrid-audiences", "dotdigital-audiences"):
            settings = self.settings if sub.action.destination == "sendgrid-audiences" else \
                {**self.settings, "listName": self.settings.get("audienceName")}
            event = with_list_placeholder(event, settings)
        try:
            payload = build_payload(sub.action, sub.compiled, event)
        except PayloadInvalid:
            if sub.action.key == "syncAudience" and not says_membership(sub.compiled(event), event) \
                    and not _dotdigital_membership(sub, event):
                # The default trigger takes every identify and track; an ordinary one is not for
                # this action (dropped), not a bad audience event (rejected).
                raise Skip("not an audience membership change: no Engage audience or journey step, and no "
                           "boolean at the mapped audience key") from None
            raise
        if sub.action.destination == "webhook":
            return plan_send(payload, self.settings, batched=sub.batching)
        return PLANNERS[(sub.action.destination, sub.action.key)](payload, event, self.clock())

    async def run(self, planned: Sequence[PlannedEvent], *, replay: bool = False,
                  batch_requests: bool = True) -> list[EventResult]:
        self.context.replay = replay
        self.context.batch_requests = batch_requests
        try:
            if self.audience_lists is not None:
                await self.audience_lists.resolve(planned)
        except (Transient, Rejection) as exc:  # the events that needed a list wait or fail; the others run
            waiting = {e.ref for e in planned if needs_list(e)}
            ran = await execute([e for e in planned if e.ref not in waiting], self.context, self.runners)
            kind, after = (RETRY, exc.after) if isinstance(exc, Transient) else (REJECTED, None)
            failed = {ref: EventResult(ref, kind, exc.reason, exc.status, after=after) for ref in waiting}
            by_ref = {r.ref: r for r in ran}
            return [failed.get(e.ref) or by_ref[e.ref] for e in planned]
        return await execute(planned, self.context, self.runners)


def _dotdigital_membership(sub: Subscribed, event: dict[str, Any]) -> bool:
    mapped = sub.compiled(event)
    return sub.action.destination == "dotdigital-audiences" and isinstance(mapped, dict) \
        and audience_membership(mapped) is not None


def _user_of(event: dict[str, Any]) -> str | None:
    user = event.get("userId") or event.get("anonymousId")
    return str(user) if user is not None else None
