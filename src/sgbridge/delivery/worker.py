"""The delivery loop for one destination: claim a window of the log, send, settle.

A window is a contiguous range of the log claimed by one worker (several processes on
PostgreSQL claim different windows). Inside a window, each batch is retried with backoff
until it is delivered, rejected, or its events pass the maximum age; only then is the window
completed and the destination's cursor moved. Exceptions (drops, rejections) are stored as
outcome rows; delivered is the default for everything the cursor has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, cast

from sgbridge.delivery import metrics
from sgbridge.delivery.retry import backoff_delay
from sgbridge.destinations.base import Batch, BatchDestination, EventDestination
from sgbridge.journal import Journal
from sgbridge.model import AttemptRecord, OutcomeRecord, StoredEvent, Window
from sgbridge.outcomes import DELIVERED, REJECTED, Delivered, Rejected, Retry
from sgbridge.settings import DeliverySettings

log = logging.getLogger(__name__)

RECLAIM_SECONDS = 1.0  # an idle lane still tries a claim this often (expired claims of dead owners)


class DeliveryWorker:
    def __init__(self, journal: Journal, destination: BatchDestination | EventDestination, settings: DeliverySettings,
                 url: str = "", max_events_in_flight: int | None = None, pace_seconds: float = 0.0) -> None:
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
                window = None if newest is None else await self.journal.claim_window(
                    name, self.owner, limit, self.settings.lease_seconds)
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
        batches, records = self.destination.prepare(events)
        results = await asyncio.gather(*(self._deliver(window, b) for b in batches))
        for rejected in results:
            records.extend(rejected)
        await self.journal.complete_window(window, records)
        self._count(len(events), records)

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
        outcome = await cast(BatchDestination, self.destination).send(batch)
        seqs = [m.seq for m in batch.messages]
        kind = type(outcome).__name__.lower()
        detail = getattr(outcome, "reason", "")
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

    async def _deliver(self, window: Window, batch: Batch) -> list[OutcomeRecord]:
        """Send one batch until it is settled; returns the rejected events' records."""
        rejected: list[OutcomeRecord] = []
        queue = [batch]
        failures = 0
        while queue:
            current = queue.pop()
            outcome = await self._attempt_holding(window, current)
            if isinstance(outcome, Delivered):
                rejected.extend(OutcomeRecord(seq, REJECTED, reason, 400) for seq, reason in outcome.refused)
                continue
            if isinstance(outcome, Rejected):
                if outcome.status_code == 400 and len(current.messages) > 1:
                    # Halve it to find the event the API objects to.
                    queue.extend(cast(BatchDestination, self.destination).split(current))
                else:
                    rejected.extend(OutcomeRecord(m.seq, REJECTED, outcome.reason, outcome.status_code)
                                    for m in current.messages)
                continue
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
                        len(current.messages), delay, retry.reason)
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
        pending = [e for e in window.events if destination.consumes(e.source)]
        destination.begin(window.claim_id, pending)  # before any await: windows register in claim order
        renewing = asyncio.create_task(self._renew(window))  # import jobs can outlast the lease
        try:
            records = await self._settle_pending(window, destination, pending)
            await self.journal.complete_window(window, records)
        finally:
            renewing.cancel()
            destination.end(window.claim_id)
        self._count(len(pending), records)

    async def _settle_pending(self, window: Window, destination: EventDestination,
                              pending: list[StoredEvent]) -> list[OutcomeRecord]:
        records: list[OutcomeRecord] = []
        failures = 0
        while pending:
            settled = await destination.deliver(pending, window=window.claim_id)
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
            log.warning("%s: %d events to retry in %.1fs (%s)", destination.name, len(pending), delay, reason)
            await self.journal.extend_claim(window.claim_id, self.settings.lease_seconds + delay, reason,
                                            time.time() + delay)
            await asyncio.sleep(delay)
        return records

    async def _replay(self, window: Window) -> None:
        if isinstance(self.destination, EventDestination):
            await self._replay_events(window)
            return
        batches, records = self.destination.prepare([e for e in window.events if self.destination.consumes(e.source)])
        retry_at: dict[int, float] = {}
        for batch in batches:
            outcome = await self._attempt(batch)
            seqs = [m.seq for m in batch.messages]
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
        settled = await destination.deliver([e for e in window.events if destination.consumes(e.source)],
                                            replay=True)
        records = [s.record for s in settled if s.record is not None and not s.retry]
        retry_at = {s.seq: time.time() + backoff_delay(1, self.settings, s.after) for s in settled if s.retry}
        records.extend(OutcomeRecord(s.seq, REJECTED, s.reason) for s in settled if s.retry)
        await self.journal.settle_replays(destination.name, records, retry_at)
