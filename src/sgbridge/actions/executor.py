"""Runs the operations of many events in order per contact, batched across contacts.

Events that share an identifier (email, phone_number_id, external_id, anonymous_id) or a
Segment user are one *group*: their operations run in the order the events arrived. Each
round takes, for every group, the longest run of its next operations whose phases do not go
backwards (see ``operations``), then executes the round phase by phase with every group's
operations of that phase batched together: one contacts PUT for thousands of contacts,
one search per 50 identifiers, and so on. A group whose operation fails with a transient error
stops there: its remaining operations are not run and its unfinished events come back as
``retry``, while every other group goes on; that is what "a failing contact blocks only itself"
means inside one window.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from sgbridge.actions.http import ApiClient
from sgbridge.actions.operations import (
    DotdigitalStep,
    HttpCall,
    ListRemoval,
    Operation,
    PlannedEvent,
    SuppressionChange,
    Upsert,
)
from sgbridge.actions.ordering import Groups
from sgbridge.actions.results import DROPPED, OK, REJECTED, RETRY, EventResult, Item, OpResult, combine

PhaseRunner = Callable[[list[Item], "Context"], Awaitable[None]]


class MailGuard:
    """Remembers which messages were sent, so a message is never sent twice (see the journal)."""

    async def begin(self, keys: Sequence[str]) -> dict[str, str]:
        """Mark ``keys`` as being sent; returns the earlier state of keys seen before."""
        return {}

    async def finish(self, outcomes: dict[str, tuple[str, str | None]]) -> None:
        """key -> ("sent", sg_message_id) | ("unsent", None) | ("unknown", reason)."""


@dataclass
class Context:
    api: ApiClient  # the destination's (SendGridApi, DotdigitalApi)
    http: httpx.AsyncClient
    mail_guard: MailGuard = field(default_factory=MailGuard)
    replay: bool = False  # an operator asked for these events again: held messages may be sent
    batch_requests: bool = True  # webhook: batched calls share a request (performBatch); False: each alone
    job_timeout_seconds: float = 600.0
    job_poll_seconds: float = 0.5
    webhook_on_request: Callable[[Any], Awaitable[None] | None] | None = None


async def execute(events: Sequence[PlannedEvent], ctx: Context, runners: dict[int, PhaseRunner]) -> list[EventResult]:
    """Run every valid event's operations; one result per event, in input order."""
    groups = Groups(events)
    queues: dict[int, list[Item]] = {}
    items_of: dict[int, list[Item]] = {}
    for index, event in enumerate(events):
        items = [Item(event, op, groups.of(index), chain=event.chain_of(n)) for n, op in enumerate(event.operations)] \
            if event.invalid is None else []
        items_of[event.ref] = items
        for item in items:
            queues.setdefault(item.group, []).append(item)
    blocked: set[int] = set()
    # An action's step that was refused ends that action for that event: its later steps are not
    # run (a removal after an upsert SendGrid refused is not sent), as Segment's code stops at the
    # first error. The event's other actions, and the group's other events, go on.
    refused: set[tuple[int, int]] = set()
    while any(queues.values()):
        round_items: list[Item] = []
        for group, queue in queues.items():
            if group not in blocked:
                round_items += _take_round(queue)
        if not round_items:
            break
        for phase in sorted({i.op.phase for i in round_items}):
            todo = [i for i in round_items if i.op.phase == phase and i.group not in blocked
                    and (i.event.ref, i.chain) not in refused]
            if todo:
                await runners[phase](todo, ctx)
            for item in todo:
                if item.result is not None and item.result.kind == RETRY:
                    blocked.add(item.group)
                elif item.result is not None and item.result.kind == REJECTED:
                    refused.add((item.event.ref, item.chain))
        queues = {g: q for g, q in queues.items() if q and g not in blocked}
    results: list[EventResult] = []
    for event in events:
        if event.skipped is not None and not items_of[event.ref]:
            results.append(EventResult(event.ref, DROPPED, event.skipped))
            continue
        if event.invalid is not None:
            results.append(EventResult(event.ref, REJECTED, event.invalid.message, event.invalid.status,
                                       event.invalid.code))
            continue
        outcomes = [i.result or _not_run(i, blocked) for i in items_of[event.ref]]
        results.append(combine(event.ref, outcomes))
    return results


def commutes(later: Operation, earlier: Operation) -> bool:
    """Whether ``later`` may run before ``earlier`` (of the same group) without changing the end state."""
    if isinstance(later, DotdigitalStep) or isinstance(earlier, DotdigitalStep):
        return False  # a contact's Dotdigital actions run in the order of its events
    if isinstance(later, HttpCall) or isinstance(earlier, HttpCall):
        return not (isinstance(later, HttpCall) and isinstance(earlier, HttpCall))  # webhooks keep their order
    contact_ops = (Upsert, ListRemoval)
    if isinstance(later, contact_ops) and isinstance(earlier, contact_ops):
        if isinstance(later, ListRemoval) and isinstance(earlier, ListRemoval):
            return True
        if isinstance(later, Upsert) and isinstance(earlier, Upsert):
            return False  # the later values must win
        upsert, removal = (later, earlier) if isinstance(later, Upsert) else (earlier, later)
        assert isinstance(upsert, Upsert) and isinstance(removal, ListRemoval)
        return removal.list_id not in upsert.list_ids
    if isinstance(later, contact_ops) or isinstance(earlier, contact_ops):
        return True  # mail and suppressions do not depend on contact fields or lists
    if isinstance(later, SuppressionChange) and isinstance(earlier, SuppressionChange) \
            and later.group_id != earlier.group_id:
        return True
    return later.identifiers() != earlier.identifiers()  # mail and suppressions of one address keep their order


def _take_round(queue: list[Item]) -> list[Item]:
    """The operations of one group that can run in this round; removed from ``queue``.

    Inside a round, operations run by phase. An operation joins the round if it commutes with
    every earlier operation left for later and with every operation already taken that will
    run after it (a higher phase).
    """
    taken: list[Item] = []
    deferred: list[Item] = []
    for item in queue:
        if all(commutes(item.op, d.op) for d in deferred) and \
                all(commutes(item.op, t.op) for t in taken if t.op.phase > item.op.phase):
            taken.append(item)
        else:
            deferred.append(item)
    queue[:] = deferred
    return taken


def _not_run(item: Item, blocked: set[int]) -> OpResult:
    if item.group in blocked:
        return OpResult(RETRY, "waiting: an earlier action of the same contact has to succeed first")
    return OpResult(OK)


__all__ = ["OK", "Context", "MailGuard", "PhaseRunner", "execute"]
