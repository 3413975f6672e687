"""SendGrid Event Webhook sender: plays SendGrid's side of the webhook against the bridge.

The bridge's inbound promises (verify, never lose, dedupe) are only tested if something sends
like SendGrid does: signed, CRLF-framed batches; at-least-once delivery with exact duplicates;
re-deliveries whose ``sg_event_id`` changed; and retries with backoff of every batch that did
not get a 2xx, re-signed with a fresh timestamp, until a deadline (SendGrid: 24 hours). The
sender records what was acknowledged so a test can check that every logical event acked by
the bridge really came out the other side.

Signing, framing and the event factory live in ``webhook_signing`` and ``event_factory``;
they are re-exported here so callers need one import.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from sgbridge.emulators.event_factory import EVENT_KINDS, EventFactory
from sgbridge.emulators.webhook_signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookKeyPair,
    encode_event,
    frame_encoded,
    frame_events,
    generate_keypair,
    keypair_from_private_key,
    load_private_key_pem,
    public_key_base64,
    sign,
)

__all__ = [
    "EVENT_KINDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "EventFactory",
    "SenderStats",
    "WebhookKeyPair",
    "WebhookSender",
    "format_summary",
    "frame_events",
    "generate_keypair",
    "keypair_from_private_key",
    "load_private_key_pem",
    "public_key_base64",
    "run_webhook_sender",
    "sign",
]


@dataclass
class SenderStats:
    generated: int = 0  # distinct logical events created (or taken from the caller)
    batches: int = 0
    events_sent: int = 0  # event copies placed in batches, duplicates included, retries not
    events_acked: int = 0
    requests: int = 0  # POST attempts
    acked_requests: int = 0
    failed_requests: int = 0  # non-2xx or transport error
    retried_requests: int = 0  # attempts after the first for a batch
    transport_errors: int = 0
    abandoned_batches: int = 0  # still failing at the retry deadline: their events are lost
    duplicates_sent: int = 0  # same content, same sg_event_id, in a later batch
    changed_id_resends: int = 0  # same content, new sg_event_id
    status_counts: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "status_counts"}
        return {**data, "status_counts": dict(self.status_counts)}


@dataclass(slots=True)
class _Batch:
    body: bytes
    logical_keys: list[str]
    event_ids: list[str]
    created: float
    attempts: int = 0


@dataclass(slots=True)
class _Item:
    encoded: bytes
    logical_key: str
    event_id: str


class WebhookSender:
    """Send signed, framed batches to ``target`` at ``rate`` events/s with SendGrid's quirks.

    ``duplicate_fraction`` of the events are sent again 1-5 batches later unchanged;
    ``changed_id_fraction`` are sent again with a new ``sg_event_id``. A batch that gets a
    non-2xx answer or a transport error is retried after ``backoff_initial * 2**n`` seconds
    (capped at ``backoff_max``, jittered) until ``retry_deadline`` seconds after its first
    attempt, then abandoned. ``acked_logical`` holds the logical event keys (the original
    ``sg_event_id``) that reached a 2xx at least once.
    """

    def __init__(
        self,
        target: str,
        private_key: ec.EllipticCurvePrivateKey,
        *,
        factory: EventFactory | None = None,
        rate: float | None = 1000.0,
        batch_size: int = 100,
        concurrency: int = 4,
        use_gzip: bool = False,
        duplicate_fraction: float = 0.0,
        changed_id_fraction: float = 0.0,
        retry_deadline: float = 60.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be >= 1")
        if not (0 <= duplicate_fraction <= 1 and 0 <= changed_id_fraction <= 1):
            raise ValueError("fractions must be between 0 and 1")
        self.target = target
        self.private_key = private_key
        self.factory = factory if factory is not None else EventFactory(seed)
        self.rate = rate if rate and rate > 0 else None
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.use_gzip = use_gzip
        self.duplicate_fraction = duplicate_fraction
        self.changed_id_fraction = changed_id_fraction
        self.retry_deadline = retry_deadline
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.transport = transport
        self.extra_headers = dict(headers or {})
        self.stats = SenderStats()
        self.acked_logical: set[str] = set()
        self.acked_event_ids: set[str] = set()
        self._rng = Random(seed ^ 0x5E17)  # independent of the factory's stream
        self._outstanding = 0
        self._idle = asyncio.Event()

    # -- batch assembly --------------------------------------------------------------------

    def _source(
        self, events: Iterable[Mapping[str, Any]] | None, total: int | None, stop_at: float | None
    ) -> Iterator[Mapping[str, Any]]:
        produced = 0
        given = iter(events) if events is not None else None
        while total is None or produced < total:
            if stop_at is not None and time.monotonic() >= stop_at:
                return
            if given is not None:
                nxt = next(given, None)
                if nxt is None:
                    return
                yield nxt
            else:
                yield self.factory.event()
            produced += 1

    def _schedule_resends(
        self, event: Mapping[str, Any], item: _Item, seq: int, later: list[tuple[int, _Item]]
    ) -> None:
        if self._rng.random() < self.duplicate_fraction:
            later.append((seq + self._rng.randint(1, 5), item))
            self.stats.duplicates_sent += 1
        if self._rng.random() < self.changed_id_fraction:
            new_id = self.factory.fresh_event_id(str(event.get("event", "processed")))
            changed = {**event, "sg_event_id": new_id}
            later.append((seq + self._rng.randint(1, 5), _Item(encode_event(changed), item.logical_key, new_id)))
            self.stats.changed_id_resends += 1

    async def _produce(self, queue: asyncio.Queue[_Batch | None], source: Iterator[Mapping[str, Any]]) -> None:
        later: list[tuple[int, _Item]] = []  # (due batch number, item) re-sends
        start = time.monotonic()
        seq = 0
        exhausted = False
        while not exhausted or later:
            items = [it for due, it in later if due <= seq or exhausted][: self.batch_size]
            taken = {id(it) for it in items}
            later = [(due, it) for due, it in later if id(it) not in taken]
            while len(items) < self.batch_size and not exhausted:
                event = next(source, None)
                if event is None:
                    exhausted = True
                    break
                self.stats.generated += 1
                event_id = str(event.get("sg_event_id", f"#{self.stats.generated}"))
                item = _Item(encode_event(event), event_id, event_id)
                items.append(item)
                self._schedule_resends(event, item, seq, later)
            seq += 1
            if not items:
                continue
            if self.rate is not None:
                # Pace by events: batch k leaves once the previous events' time budget is spent.
                delay = start + self.stats.events_sent / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            self.stats.batches += 1
            self.stats.events_sent += len(items)
            body = frame_encoded([it.encoded for it in items])
            batch = _Batch(body, [it.logical_key for it in items], [it.event_id for it in items], time.monotonic())
            self._outstanding += 1
            self._idle.clear()
            await queue.put(batch)

    # -- sending ----------------------------------------------------------------------------

    async def _attempt(self, client: httpx.AsyncClient, batch: _Batch) -> bool:
        batch.attempts += 1
        self.stats.requests += 1
        if batch.attempts > 1:
            self.stats.retried_requests += 1
        timestamp = str(int(time.time()))  # a retry is re-signed with a new timestamp
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "SendGrid Event API",
            SIGNATURE_HEADER: sign(self.private_key, timestamp, batch.body),
            TIMESTAMP_HEADER: timestamp,
            **self.extra_headers,
        }
        content = batch.body
        if self.use_gzip:
            # The signature covers the framed JSON; gzip is only the transfer encoding.
            headers["Content-Encoding"] = "gzip"
            content = gzip.compress(batch.body, mtime=0)
        try:
            response = await client.post(self.target, content=content, headers=headers)
        except httpx.TransportError as exc:
            self.stats.transport_errors += 1
            self.stats.status_counts[type(exc).__name__] += 1
            return False
        self.stats.status_counts[str(response.status_code)] += 1
        return 200 <= response.status_code < 300

    def _settle(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0:
            self._idle.set()

    async def _retry_later(self, queue: asyncio.Queue[_Batch | None], batch: _Batch, delay: float) -> None:
        await asyncio.sleep(delay)
        await queue.put(batch)

    async def _work(
        self, client: httpx.AsyncClient, queue: asyncio.Queue[_Batch | None], tasks: asyncio.TaskGroup
    ) -> None:
        while (batch := await queue.get()) is not None:
            if await self._attempt(client, batch):
                self.stats.acked_requests += 1
                self.stats.events_acked += len(batch.logical_keys)
                self.acked_logical.update(batch.logical_keys)
                self.acked_event_ids.update(batch.event_ids)
                self._settle()
                continue
            self.stats.failed_requests += 1
            backoff = min(self.backoff_max, self.backoff_initial * 2 ** (batch.attempts - 1))
            delay = backoff * self._rng.uniform(0.5, 1.0)
            if time.monotonic() + delay > batch.created + self.retry_deadline:
                self.stats.abandoned_batches += 1
                self._settle()
                continue
            tasks.create_task(self._retry_later(queue, batch, delay))

    async def run(
        self,
        *,
        duration: float | None = None,
        total: int | None = None,
        events: Iterable[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Send until ``total`` events, ``duration`` seconds or ``events`` run out, then drain.

        With none of the three it would never stop, so that is refused. Returns the summary.
        """
        if duration is None and total is None and events is None:
            raise ValueError("give duration, total or events")
        started = time.monotonic()
        stop_at = None if duration is None else started + duration
        source = self._source(events, total, stop_at)
        queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self._idle.set()
        async with (
            httpx.AsyncClient(transport=self.transport, timeout=self.timeout, limits=limits) as client,
            asyncio.TaskGroup() as tasks,
        ):
            for _ in range(self.concurrency):
                tasks.create_task(self._work(client, queue, tasks))
            await self._produce(queue, source)
            await self._idle.wait()  # every batch acked or abandoned
            for _ in range(self.concurrency):
                await queue.put(None)
        return self.summary(time.monotonic() - started)

    def summary(self, elapsed: float) -> dict[str, Any]:
        acked = len(self.acked_logical)
        return {
            "target": self.target,
            "elapsed_s": round(elapsed, 3),
            **self.stats.as_dict(),
            "logical_acked": acked,
            "logical_lost": self.stats.generated - acked,
            "events_per_second": round(self.stats.events_sent / elapsed, 1) if elapsed > 0 else 0.0,
        }


def format_summary(summary: Mapping[str, Any]) -> str:
    return (
        f"sent {summary['events_sent']} events in {summary['batches']} batches to {summary['target']} "
        f"in {summary['elapsed_s']}s ({summary['events_per_second']} events/s)\n"
        f"acked {summary['logical_acked']}/{summary['generated']} logical events, "
        f"lost {summary['logical_lost']}; requests {summary['requests']} "
        f"(failed {summary['failed_requests']}, retried {summary['retried_requests']}, "
        f"abandoned batches {summary['abandoned_batches']}); "
        f"duplicates {summary['duplicates_sent']}, changed-id re-sends {summary['changed_id_resends']}; "
        f"statuses {summary['status_counts']}"
    )


async def run_webhook_sender(
    target: str,
    rate: float,
    batch_size: int,
    duration: float | None,
    total: int | None,
    private_key_pem: str | None,
    *,
    seed: int = 0,
    concurrency: int = 4,
    use_gzip: bool = False,
    duplicate_fraction: float = 0.01,
    changed_id_fraction: float = 0.001,
    retry_deadline: float = 60.0,
    timeout: float = 10.0,
    save_private_key: Path | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """CLI entry (``sgbridge emulate sendgrid``): send, print a summary, return it.

    Without ``private_key_pem`` a key pair is generated and its public key printed, so the
    bridge can be started with ``SENDGRID_WEBHOOK_PUBLIC_KEY``; ``save_private_key`` writes
    the generated PEM so the next run can reuse the same key.
    """
    if private_key_pem is None:
        pair = generate_keypair()
        echo(f"generated signing key; set SENDGRID_WEBHOOK_PUBLIC_KEY={pair.public_key_base64}")
        if save_private_key is not None:
            save_private_key.write_text(pair.private_key_pem())
            save_private_key.chmod(0o600)
            echo(f"private key written to {save_private_key}")
    else:
        pair = keypair_from_private_key(load_private_key_pem(private_key_pem))
    sender = WebhookSender(
        target,
        pair.private_key,
        factory=EventFactory(seed, start_time=time.time()),
        rate=rate,
        batch_size=batch_size,
        concurrency=concurrency,
        use_gzip=use_gzip,
        duplicate_fraction=duplicate_fraction,
        changed_id_fraction=changed_id_fraction,
        retry_deadline=retry_deadline,
        timeout=timeout,
        transport=transport,
        seed=seed,
    )
    summary = await sender.run(duration=duration, total=total)
    summary["public_key"] = pair.public_key_base64
    echo(format_summary(summary))
    return summary
