"""The delivery loop for one destination: claim a window of the log, send, settle.

A window is a contiguous range of the log claimed by one worker (several processes on
PostgreSQL claim different windows). Inside a window, each batch is retried with backoff
until it is delivered, rejected, or its events pass the maximum age; only then is the window
completed and the destination's cursor moved. Exceptions (drops, rejections) are stored as
outcome rows; delivered is the default for everything the cursor has passed.

An event the destination cannot prepare or send is rejected alone and the rest of its window goes
on: preparation is guarded per event, and a refused batch is halved to find the event at fault,
which is rejected only on proof (delivery/search.py; transient faults: delivery/faults.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sgbridge.delivery import metrics
from sgbridge.delivery.faults import cause, describe, is_transient, kind_of
from sgbridge.delivery.retry import backoff_delay
from sgbridge.delivery.search import Search, Step
from sgbridge.destinations.base import Batch, BatchDestination, EventDestination, SettledEvent
from sgbridge.journal import Journal
from sgbridge.logs import context
from sgbridge.model import AttemptRecord, OutcomeRecord, StoredEvent, Window
from sgbridge.outcomes import DELIVERED, REJECTED, Delivered, Refused, Rejected, Retry
from sgbridge.settings import DeliverySettings

log = logging.getLogger(__name__)

RECLAIM_SECONDS = 1.0  # an idle lane still tries a claim this often (expired claims of dead owners)


@dataclass(slots=True)
class YieldTo:
    """Claims wait while ``busy()`` says another process needs the CPU more (the ingest process,
    taking a burst of webhooks), for events up to ``max_seconds`` old: then they go on regardless."""

    busy: Callable[[], bool]
    max_seconds: float
    poll_seconds: float = 0.25


@dataclass(slots=True)
class _Settled:
    """An event's settlement decided by the worker (``deliver`` raised)."""

    seq: int
    record: OutcomeRecord | None
    retry: bool = False
    after: float | None = None
    reason: str = ""


class DeliveryWorker:
    def __init__(self, journal: Journal, destination: BatchDestination | EventDestination, settings: DeliverySettings,
                 url: str = "", max_events_in_flight: int | None = None, pace_seconds: float = 0.0,
                 yield_to: YieldTo | None = None) -> None:
        self.journal = journal
        self.destination = destination
        self.settings = settings
        self.url = url
        # Many lanes keep latency low while windows wait on the API (import jobs); this bound keeps
        # the memory of a backlog in check: lanes claim only what fits.
        self.max_events_in_flight = max_events_in_flight
        self._in_flight = 0
        # After a window smaller than the limit, wait this long so the next one is bigger (the
        # warehouse: each load has a fixed cost).
        self.pace_seconds = pace_seconds
        self.yield_to = yield_to
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self._empty_at = -1  # the newest seq seen when a claim last found nothing to do
        self._claimed_at = 0.0  # when a claim was last tried (monotonic)
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New events were appended: skip the poll sleep."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self, drain_seconds: float = 0.0) -> None:
        """Deliver until stopped; then let windows under way finish for up to ``drain_seconds``."""
        lanes = [asyncio.create_task(self._lane(i)) for i in range(self.settings.concurrency)]
        lanes.append(asyncio.create_task(self._replay_lane()))
        try:
            await self._stop.wait()
            if drain_seconds:
                await asyncio.wait(lanes, timeout=drain_seconds)
        finally:
            for lane in lanes:
                lane.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _lane(self, index: int) -> None:
        name = self.destination.name
        while not self._stop.is_set():
            limit = self.settings.window_events
            if self.max_events_in_flight is not None:
                limit = min(limit, self.max_events_in_flight - self._in_flight)
                if limit <= 0:
                    await self._sleep(self.settings.poll_seconds * (1 + index))
                    continue
            self._in_flight += limit  # reserved before the await, so lanes do not overshoot together
            try:
                newest = await self._nothing_new()
                if newest is not None and self.yield_to is not None:
                    await self._yield()
                    if self._stop.is_set():
                        continue  # stopped while yielding: no new window
                window = None if newest is None else await self.journal.claim_window(
                    name, self.owner, limit, self.settings.lease_seconds, self.destination.stream,
                    exclusive=getattr(self.destination, "exclusive", False),
                    bodies=getattr(self.destination, "claims_bodies", True))
                self._in_flight -= limit - (len(window.events) if window else 0)
                limit = len(window.events) if window else 0
                if window is None:
                    if newest is not None:
                        self._empty_at = max(self._empty_at, newest)
                    await self._sleep(self.settings.poll_seconds * (1 + index))
                    continue
                await self.process_window(window)
                if self.pace_seconds and len(window.events) < self.settings.window_events:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), timeout=self.pace_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery lane %s/%d failed; retrying in 1 s", name, index)
                await asyncio.sleep(1.0)
            finally:
                self._in_flight -= limit

    async def _yield(self) -> None:
        """Wait while the process this one yields to is busy and the oldest event waiting for this
        destination is younger than the bound (so a burst of webhooks is acknowledged first and
        loaded after, and a steady load is never left behind for more than the bound)."""
        gate = cast(YieldTo, self.yield_to)
        while not self._stop.is_set() and gate.busy():
            oldest = await asyncio.to_thread(self.journal.oldest_waiting, self.destination.name,
                                             self.destination.stream)
            if oldest is None or time.time() - oldest >= gate.max_seconds:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=gate.poll_seconds)

    async def _nothing_new(self) -> int | None:
        """The newest seq if a claim is worth trying, None if nothing arrived since the last empty one.

        A claim is a write transaction; in another process than ingestion, an idle lane that
        claimed every poll would take SQLite's write lock from the webhook writer 20 times a
        second. Reading the newest seq takes no lock. Claims are still tried every
        ``RECLAIM_SECONDS``, for windows whose claim expired (their owner died).
        """
        newest = await asyncio.to_thread(self.journal.latest_seq)
        now = time.monotonic()
        if newest <= self._empty_at and now - self._claimed_at < min(RECLAIM_SECONDS, self.settings.lease_seconds / 3):
            return None
        self._claimed_at = now
        return newest

    async def process_window(self, window: Window) -> None:
        if isinstance(self.destination, EventDestination):
            await self._settle_events(window)
            return
        events = [e for e in window.events if self.destination.consumes(e.source)]
        batches, records = self._prepare(events)
        search = Search.for_window(len(events))
        results = await asyncio.gather(*(self._deliver(window, b, search) for b in batches))
        for rejected in results:
            records.extend(rejected)
        await self.journal.complete_window(window, records)
        self._count(len(events), records)

    def _prepare(self, events: list[StoredEvent]) -> tuple[list[Any], list[OutcomeRecord]]:
        """The destination's ``prepare``; if it raises, event by event, so that an event that
        cannot be mapped or serialised (nested deeper than orjson writes, say) is rejected alone
        (delivery/search.py). No cost while nothing fails: one ``try`` around the whole window."""
        destination = cast(BatchDestination, self.destination)
        try:
            return destination.prepare(events)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("%s: preparing %d events failed (%s); preparing them one by one", destination.name,
                        len(events), describe(exc))
        good: list[StoredEvent] = []
        records: list[OutcomeRecord] = []
        for event in events:
            failure = _fails(destination.prepare, event)
            if failure is None:
                good.append(event)
            else:
                records.append(OutcomeRecord(event.seq, REJECTED, f"could not prepare this event for "
                                             f"{destination.name}: {failure}"))
        batches, more = destination.prepare(good)
        return batches, records + more

    def _count(self, total: int, records: list[OutcomeRecord]) -> None:
        name = self.destination.name
        by_status: dict[str, int] = {}
        for r in records:
            by_status[r.status] = by_status.get(r.status, 0) + 1
        for status, count in by_status.items():
            metrics.DELIVERY_EVENTS.labels(name, status).inc(count)
        metrics.DELIVERY_EVENTS.labels(name, DELIVERED).inc(total - len(records))

    async def _attempt(self, batch: Batch) -> Any:
        started = time.time()
        try:
            outcome = await cast(BatchDestination, self.destination).send(batch)
        except Exception as exc:  # not an answer of the destination: ours, or an event's (search.py)
            if is_transient(exc):
                outcome = Retry(f"sending failed: {describe(exc)}")
            else:
                outcome = Refused(f"sending failed: {cause(exc)}", kind_of(exc))
        seqs = [m.seq for m in batch.messages]
        kind = type(outcome).__name__.lower()
        detail = getattr(outcome, "reason", "") or getattr(outcome, "response", "")
        code = getattr(outcome, "status_code", None)
        metrics.DELIVERY_ATTEMPTS.labels(self.destination.name, kind).inc()
        await self.journal.record_attempts([AttemptRecord(
            self.destination.name, started, (time.time() - started) * 1000, self.url, code, kind, detail, seqs)])
        if isinstance(outcome, Delivered):
            done = time.time()
            hist = metrics.DELIVERY_LATENCY.labels(self.destination.name)
            refused = {seq for seq, _ in outcome.refused}
            for m in batch.messages:
                if m.seq not in refused:
                    hist.observe(done - m.received_at)
        return outcome

    async def _attempt_holding(self, window: Window, batch: Batch) -> Any:
        """``_attempt``, renewing the window's claim while the send lasts. A warehouse load, or its
        search for refused events, can outlast the lease; another process would then take the
        window over and send it again beside this one (on PostgreSQL, several processes share the
        journal)."""
        renewing = asyncio.create_task(self._renew(window))
        try:
            return await self._attempt(batch)
        finally:
            renewing.cancel()

    async def _renew(self, window: Window) -> None:
        lease = self.settings.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            try:
                if not await self.journal.renew_claim(window.claim_id, self.owner, lease):
                    log.warning("%s: claim %d was taken over while it was being sent", self.destination.name,
                                window.claim_id)
                    return
            except Exception:  # the journal is busy or down: try again at the next beat
                log.exception("%s: could not renew claim %d", self.destination.name, window.claim_id)

    async def _deliver(self, window: Window, batch: Batch, search: Search) -> list[OutcomeRecord]:
        """Send one batch until it is settled; returns the rejected events' records."""
        rejected: list[OutcomeRecord] = []
        destination = cast(BatchDestination, self.destination)
        queue = [batch]  # the last one is sent next
        failures = 0
        while queue:
            current = queue.pop()
            outcome = await self._attempt_holding(window, current)
            if isinstance(outcome, Delivered):
                search.took()
                rejected.extend(OutcomeRecord(seq, REJECTED, reason, 400) for seq, reason in outcome.refused)
                continue
            if isinstance(outcome, Rejected):
                if outcome.status_code == 400 and len(current.messages) > 1:
                    # Halve it to find the event the API objects to.
                    queue.extend(reversed(destination.split(current)))
                else:
                    rejected.extend(OutcomeRecord(m.seq, REJECTED, outcome.reason, outcome.status_code)
                                    for m in current.messages)
                continue
            if isinstance(outcome, Refused):
                step = search.refused([m.seq for m in current.messages], outcome)
                if step is Step.SPLIT:
                    queue.extend(reversed(destination.split(current)))
                    continue
                if step is Step.REJECT:
                    reason = f"{outcome.reason} (refused alone, twice)"
                    rejected.extend(OutcomeRecord(m.seq, REJECTED, reason) for m in current.messages)
                    continue
                if step is Step.AGAIN and queue:
                    queue.insert(0, current)  # once the rest of the window has been tried
                    continue
                outcome = Retry(outcome.reason)  # AGAIN with nothing else left, or WAIT: after a delay
            retry = cast(Retry, outcome)
            failures += 1
            cutoff = time.time() - self.settings.max_age_seconds
            expired = [m for m in current.messages if m.received_at < cutoff]
            if expired:
                reason = f"not delivered within the maximum age after {failures} attempts; last: {retry.reason}"
                rejected.extend(OutcomeRecord(m.seq, REJECTED, reason, retry.status_code) for m in expired)
                current.messages[:] = [m for m in current.messages if m.received_at >= cutoff]
                if not current.messages:
                    continue
            delay = backoff_delay(failures, self.settings, retry.after)
            log.warning("%s: %d events to retry in %.1fs (%s)", self.destination.name,
                        len(current.messages), delay, retry.reason,
                        extra=context(destination=self.destination.name, seq=f"{window.seq_lo}-{window.seq_hi}"))
            await self.journal.extend_claim(window.claim_id, self.settings.lease_seconds + delay,
                                            retry.reason, time.time() + delay)
            await asyncio.sleep(delay)
            queue.append(current)
        return rejected

    async def _replay_lane(self) -> None:
        """Dead letters an operator asked to replay: one try per request, no maximum age."""
        name = self.destination.name
        while not self._stop.is_set():
            try:
                window = await self.journal.claim_replays(name, self.settings.window_events,
                                                          self.settings.lease_seconds)
                if window is None:
                    await asyncio.sleep(max(1.0, self.settings.poll_seconds))
                    continue
                await self._replay(window)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("replay lane %s failed; retrying in 1 s", name)
                await asyncio.sleep(1.0)

    async def _settle_events(self, window: Window) -> None:
        """Per-event destinations: retry only the events that need it, until each one is settled."""
        destination = cast(EventDestination, self.destination)
        consumed = [e for e in window.events if destination.consumes(e.source)]
        pending, planned, records = self._plan(destination, consumed)
        destination.begin(window.claim_id, planned)  # before any await: windows register in claim order
        renewing = asyncio.create_task(self._renew(window))  # import jobs can outlast the lease
        try:
            records += await self._settle_pending(window, destination, pending)
            await self.journal.complete_window(window, records)
        finally:
            renewing.cancel()
            destination.end(window.claim_id)
        self._count(len(consumed), records)

    def _plan(self, destination: EventDestination,
              events: list[StoredEvent]) -> tuple[list[StoredEvent], list[Any], list[OutcomeRecord]]:
        """Each event's plan; an event whose planning fails twice alike is rejected alone."""
        kept: list[StoredEvent] = []
        planned: list[Any] = []
        records: list[OutcomeRecord] = []
        for event in events:
            try:
                plan = destination.plan(event)
            except Exception as first:
                if is_transient(first):
                    raise
                failure = _fails(lambda one: destination.plan(one[0]), event)
                if failure is not None:
                    records.append(OutcomeRecord(event.seq, REJECTED, f"could not prepare this event for "
                                                 f"{destination.name}: {failure}"))
                    continue
                plan = destination.plan(event)
            kept.append(event)
            planned.append(plan)
        return kept, planned, records

    async def _deliver_events(self, destination: EventDestination, events: list[StoredEvent], search: Search,
                              window: int | None = None, replay: bool = False) -> list[SettledEvent]:
        """``destination.deliver``; if it raises, halved to find the event at fault (search.py)."""
        try:
            settled = list(await destination.deliver(events, replay=replay, window=window))
        except Exception as exc:
            reason = f"delivering failed: {cause(exc)}"
            if is_transient(exc):
                return [_Settled(e.seq, None, retry=True, reason=reason) for e in events]
            step = search.refused([e.seq for e in events], Refused(reason, kind_of(exc)))
            if step is Step.SPLIT:
                half = len(events) // 2  # the earlier half first: each contact's events stay in order
                first = await self._deliver_events(destination, events[:half], search, window, replay)
                return first + await self._deliver_events(destination, events[half:], search, window, replay)
            if step is Step.REJECT or replay:  # a replay is one try: the event stays a dead letter
                reason += " (refused alone, twice)" if step is Step.REJECT else ""
                return [_Settled(e.seq, OutcomeRecord(e.seq, REJECTED, reason)) for e in events]
            return [_Settled(e.seq, None, retry=True, reason=reason) for e in events]  # after a delay
        if any(not s.retry for s in settled):
            search.took()
        return settled

    async def _settle_pending(self, window: Window, destination: EventDestination,
                              pending: list[StoredEvent]) -> list[OutcomeRecord]:
        records: list[OutcomeRecord] = []
        failures = 0
        search = Search.for_window(len(pending))
        while pending:
            settled = await self._deliver_events(destination, pending, search, window=window.claim_id)
            retry = {s.seq: s for s in settled if s.retry}
            records.extend(s.record for s in settled if s.record is not None and not s.retry)
            if not retry:
                break
            failures += 1
            cutoff = time.time() - self.settings.max_age_seconds
            pending = [e for e in pending if e.seq in retry]
            for event in [e for e in pending if e.received_at < cutoff]:
                last = retry[event.seq].reason
                reason = f"not delivered within the maximum age after {failures} attempts; last: {last}"
                records.append(OutcomeRecord(event.seq, REJECTED, reason))
            pending = [e for e in pending if e.received_at >= cutoff]
            if not pending:
                break
            hints = [s.after for s in retry.values() if s.after is not None]
            delay = backoff_delay(failures, self.settings, max(hints) if hints else None)
            reason = next(iter(retry.values())).reason
            log.warning("%s: %d events to retry in %.1fs (%s)", destination.name, len(pending), delay, reason,
                        extra=context(destination=destination.name, seq=f"{window.seq_lo}-{window.seq_hi}"))
            await self.journal.extend_claim(window.claim_id, self.settings.lease_seconds + delay, reason,
                                            time.time() + delay)
            await asyncio.sleep(delay)
        return records

    async def _replay(self, window: Window) -> None:
        if isinstance(self.destination, EventDestination):
            await self._replay_events(window)
            return
        events = [e for e in window.events if self.destination.consumes(e.source)]
        batches, records = self._prepare(events)
        retry_at: dict[int, float] = {}
        search = Search.for_window(len(events))
        while batches:
            batch = batches.pop()
            outcome = await self._attempt(batch)
            seqs = [m.seq for m in batch.messages]
            halve = isinstance(outcome, Rejected) and outcome.status_code == 400
            halve = halve or (isinstance(outcome, Refused) and search.refused(seqs, outcome) is Step.SPLIT)
            if halve and len(seqs) > 1:
                batches.extend(self.destination.split(batch))  # the event at fault stays a dead letter
                continue
            if isinstance(outcome, Delivered):
                refused = dict(outcome.refused)
                records.extend(OutcomeRecord(s, REJECTED, refused[s], 400) if s in refused else
                               OutcomeRecord(s, DELIVERED, "delivered on replay", outcome.status_code) for s in seqs)
            elif isinstance(outcome, Retry):
                at = time.time() + backoff_delay(1, self.settings, outcome.after)
                retry_at.update((s, at) for s in seqs)
                records.extend(OutcomeRecord(s, REJECTED, outcome.reason, outcome.status_code) for s in seqs)
            else:
                reason = getattr(outcome, "reason", "rejected")
                records.extend(OutcomeRecord(s, REJECTED, reason, getattr(outcome, "status_code", None))
                               for s in seqs)
        await self.journal.settle_replays(self.destination.name, records, retry_at)

    async def _replay_events(self, window: Window) -> None:
        destination = cast(EventDestination, self.destination)
        events = [e for e in window.events if destination.consumes(e.source)]
        settled = await self._deliver_events(destination, events, Search.for_window(len(events)), replay=True)
        records = [s.record for s in settled if s.record is not None and not s.retry]
        retry_at = {s.seq: time.time() + backoff_delay(1, self.settings, s.after) for s in settled if s.retry}
        records.extend(OutcomeRecord(s.seq, REJECTED, s.reason) for s in settled if s.retry)
        await self.journal.settle_replays(destination.name, records, retry_at)


def _fails(prepare: Callable[[list[StoredEvent]], Any], event: StoredEvent) -> str | None:
    """Why preparing this event alone fails twice in the same way; None if it does not."""
    try:
        prepare([event])
        return None
    except Exception as first:
        if is_transient(first):
            raise
        try:
            prepare([event])
        except Exception as second:
            if kind_of(second) == kind_of(first):
                return describe(second)
            raise
        return None
