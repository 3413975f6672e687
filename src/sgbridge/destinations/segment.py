"""Segment Tracking API ``/v1/batch`` client.

Messages are serialised once, when prepared, and batches are assembled from those bytes:
at 20,000 events/s there is no time to serialise twice. Batches stay within Segment's
limits (2,500 events, 500 KB); an event over 32 KB is rejected on its own with the reason.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import orjson

from sgbridge.destinations.classify import classify_error, classify_response
from sgbridge.journal import streams
from sgbridge.journal.streams import stream_of
from sgbridge.jsonbytes import dumps_kept
from sgbridge.model import OutcomeRecord, StoredEvent
from sgbridge.outcomes import DROPPED, REJECTED, Outcome
from sgbridge.routing.sendgrid_to_segment import Skip, to_segment_track
from sgbridge.settings import Settings

_ENVELOPE_BYTES = 200  # `{"batch":[…],"sentAt":"…"}` around the messages


@dataclass(slots=True)
class Prepared:
    seq: int
    received_at: float
    body: bytes


@dataclass(slots=True)
class Batch:
    write_key: str
    messages: list[Prepared]

    @property
    def seqs(self) -> list[int]:
        return [m.seq for m in self.messages]


class SegmentDestination:
    name = "segment"
    stream = streams.SENDGRID

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.segment = settings.segment
        self.client = client
        self.url = f"{self.segment.base_url()}/v1/batch"
        self._selected = {name: frozenset(src.events) for name, src in settings.sources.items()}
        self._auth: dict[str, str] = {}

    def consumes(self, source: str) -> bool:
        return stream_of(source) == self.stream  # events that came from Segment never go back to it

    def prepare(self, events: list[StoredEvent]) -> tuple[list[Batch], list[OutcomeRecord]]:
        """Map events and pack them into batches; the second list holds events not sent."""
        by_key: dict[str, list[Prepared]] = defaultdict(list)
        skipped: list[OutcomeRecord] = []
        limit = self.segment.max_event_bytes
        for stored in events:
            source = self.settings.sources.get(stored.source)
            write_key = self.settings.write_key_for(stored.source)
            if source is None or write_key is None:
                skipped.append(OutcomeRecord(stored.seq, DROPPED, f"no Segment write key for source {stored.source!r}"))
                continue
            try:
                event = orjson.loads(stored.body)
            except orjson.JSONDecodeError:  # cannot happen for rows we wrote; never block on it
                skipped.append(OutcomeRecord(stored.seq, REJECTED, "stored event is not valid JSON"))
                continue
            mapped = to_segment_track(event, key=stored.key, received_at=stored.received_at,
                                      selected=self._selected[stored.source], user_id_arg=source.user_id_arg)
            if isinstance(mapped, Skip):
                skipped.append(OutcomeRecord(stored.seq, REJECTED if mapped.rejected else DROPPED, mapped.reason))
                continue
            body = dumps_kept(mapped)  # kept with the window: exact size (jsonbytes.py)
            if len(body) > limit:
                skipped.append(OutcomeRecord(
                    stored.seq, REJECTED, f"event is {len(body)} bytes, over Segment's {limit}-byte limit"))
                continue
            by_key[write_key].append(Prepared(stored.seq, stored.received_at, body))
        return [b for key, msgs in by_key.items() for b in self._pack(key, msgs)], skipped

    def _pack(self, write_key: str, messages: list[Prepared]) -> list[Batch]:
        batches: list[Batch] = []
        current: list[Prepared] = []
        size = _ENVELOPE_BYTES
        for message in messages:
            extra = len(message.body) + 1
            if current and (len(current) >= self.segment.max_batch_events
                            or size + extra > self.segment.max_batch_bytes):
                batches.append(Batch(write_key, current))
                current, size = [], _ENVELOPE_BYTES
            current.append(message)
            size += extra
        if current:
            batches.append(Batch(write_key, current))
        return batches

    def split(self, batch: Batch) -> list[Batch]:
        half = len(batch.messages) // 2
        return [Batch(batch.write_key, batch.messages[:half]), Batch(batch.write_key, batch.messages[half:])]

    def _authorization(self, write_key: str) -> str:
        if write_key not in self._auth:
            token = base64.b64encode(f"{write_key}:".encode()).decode()
            self._auth[write_key] = f"Basic {token}"
        return self._auth[write_key]

    async def send(self, batch: Batch) -> Outcome:
        # sentAt is the time of this attempt, so Segment can correct for our clock and queueing.
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = b'{"batch":[' + b",".join(m.body for m in batch.messages) + b'],"sentAt":"' + sent_at.encode() + b'"}'
        headers = {"Content-Type": "application/json", "Authorization": self._authorization(batch.write_key),
                   "User-Agent": "sgbridge"}
        try:
            response = await self.client.post(self.url, content=body, headers=headers,
                                              timeout=self.segment.timeout_seconds)
        except httpx.HTTPError as exc:
            return classify_error(exc)
        return classify_response(response)
