"""Segment events → a Segment-style destination (SendGrid, SendGrid Lists, webhooks) on the engine.

Unlike the Segment destination, whose batches succeed or fail as a whole, an action
destination settles each event on its own: a contacts PUT serves thousands of events and its
import job rejects single rows. So it offers ``deliver(events)`` → one ``Settled`` per event,
and the worker retries only the events that need it (see ``delivery.worker``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import orjson

from sgbridge.actions.executor import MailGuard
from sgbridge.actions.operations import Invalid, PlannedEvent
from sgbridge.actions.ordering import WindowLocks
from sgbridge.actions.results import DROPPED, HELD, OK, REJECTED, RETRY, EventResult
from sgbridge.actions.runner import ActionRunner, check_subscription
from sgbridge.actions.sendgrid.api import RequestRecord
from sgbridge.journal import Journal, streams
from sgbridge.journal.streams import stream_of
from sgbridge.model import AttemptRecord, OutcomeRecord, StoredEvent
from sgbridge.outcomes import DELIVERED
from sgbridge.outcomes import DROPPED as DROPPED_STATUS
from sgbridge.outcomes import HELD as HELD_STATUS
from sgbridge.outcomes import REJECTED as REJECTED_STATUS
from sgbridge.settings import ActionDestinationSettings


@dataclass(slots=True)
class Settled:
    """How one event ended this time: a final record, or ``retry`` (with the wait asked for)."""

    seq: int
    record: OutcomeRecord | None  # None: delivered, the cursor's default
    retry: bool = False
    after: float | None = None
    reason: str = ""


class JournalMailGuard(MailGuard):
    def __init__(self, journal: Journal, destination: str) -> None:
        self.journal = journal
        self.destination = destination

    async def begin(self, keys: Sequence[str]) -> dict[str, str]:
        return await self.journal.mail_begin(self.destination, keys)

    async def finish(self, outcomes: dict[str, tuple[str, str | None]]) -> None:
        await self.journal.mail_finish(self.destination, outcomes)


class ActionsDestination:
    stream = streams.SEGMENT

    def __init__(self, name: str, config: ActionDestinationSettings, journal: Journal,
                 client: httpx.AsyncClient) -> None:
        self.name = name
        self.config = config
        self.journal = journal
        settings = config.api_settings()
        subscriptions = [
            check_subscription(f"actions.{name}.subscriptions[{i}]", config.destination, s.action, s.mapping,
                               s.trigger, s.use_defaults, enable_batching=s.enable_batching)
            for i, s in enumerate(config.subscriptions) if s.enabled
        ]
        self._requests: list[RequestRecord] = []
        self.locks = WindowLocks()
        self._plans: dict[int, dict[int, PlannedEvent]] = {}
        self._waits: dict[int, dict[int, list[asyncio.Future[None]]]] = {}
        self.runner = ActionRunner(config.destination, settings, subscriptions, client, endpoint=config.endpoint,
                                   on_request=self._requests.append, mail_guard=JournalMailGuard(journal, name),
                                   max_concurrency=config.max_concurrency, job_poll_seconds=config.job_poll_seconds,
                                   job_timeout_seconds=config.job_timeout_seconds)
        self.url = self.runner.api.endpoint

    def consumes(self, source: str) -> bool:
        return stream_of(source) == self.stream

    def plan(self, stored: StoredEvent) -> PlannedEvent:
        """One event's mapping and operations (pure; the worker guards it per event)."""
        try:
            event = orjson.loads(stored.body)
        except orjson.JSONDecodeError:  # cannot happen for rows we wrote; never block on it
            return PlannedEvent(stored.seq, invalid=Invalid("stored event is not valid JSON"))
        return self.runner.plan(stored.seq, event)

    def begin(self, window: int, planned: Sequence[PlannedEvent]) -> None:
        """Take the contacts' keys of a claimed window's plans (called in claim order, before any await)."""
        self._plans[window] = {p.ref: p for p in planned}
        waits = self.locks.register(window, planned)
        self._waits[window] = {planned[i].ref: futures for i, futures in waits.items()}

    def end(self, window: int) -> None:
        """The window is settled: release its keys."""
        self.locks.release(window)
        self._plans.pop(window, None)
        self._waits.pop(window, None)

    async def deliver(self, events: Sequence[StoredEvent], replay: bool = False,
                      window: int | None = None) -> list[Settled]:
        plans = self._plans.get(window, {}) if window is not None else {}
        planned = [plans.get(e.seq) or self.plan(e) for e in events]
        waits = self._waits.get(window, {}) if window is not None else {}
        ready = [p for p in planned if p.ref not in waits]
        waiting = [p for p in planned if p.ref in waits]
        results = await self.runner.run(ready, replay=replay) if ready else []
        if waiting:
            # These contacts also appear in earlier windows still in flight: their turn comes after.
            await asyncio.gather(*{id(f): f for p in waiting for f in waits[p.ref]}.values())
            waits.clear()
            results += await self.runner.run(waiting, replay=replay)
        await self._log_attempts()
        return [_settle(r, replay) for r in results]

    async def _log_attempts(self) -> None:
        records, self._requests[:] = list(self._requests), []
        attempts = [AttemptRecord(self.name, r.started_at, r.duration_ms, r.url, r.status,
                                  _attempt_kind(r), _exchange(r), sorted(set(r.owners)))
                    for r in records if r.owners]
        if attempts:
            await self.journal.record_attempts(attempts)


def _excerpt(data: bytes | None, limit: int) -> str:
    text = (data or b"").decode("utf-8", "replace")
    return text[:limit] + ("…" if len(text) > limit else "")


def _exchange(record: RequestRecord) -> str:
    """What the attempt log keeps of a request: its line, the start of its body and of the answer's
    (headers, with their credentials, are not kept)."""
    line = f"{record.method} {record.url}" + (f": {record.error}" if record.error else "")
    return f"{line}\nrequest: {_excerpt(record.body, 1000)}\nresponse: {_excerpt(record.response_body, 600)}"


def _attempt_kind(record: RequestRecord) -> str:
    if record.status is None:
        return "retry"
    if record.status < 300:
        return "delivered"
    return "retry" if record.status in (408, 429) or record.status >= 500 else "rejected"


def _settle(result: EventResult, replay: bool) -> Settled:
    seq = result.ref
    if result.kind == OK:
        record = OutcomeRecord(seq, DELIVERED, "delivered on replay", result.status) if replay else None
        return Settled(seq, record)
    if result.kind == RETRY:
        return Settled(seq, None, retry=True, after=result.after, reason=result.message)
    status = {REJECTED: REJECTED_STATUS, HELD: HELD_STATUS, DROPPED: DROPPED_STATUS}[result.kind]
    return Settled(seq, OutcomeRecord(seq, status, result.message, result.status))
