"""What the Segment emulator remembers, and the rules that decide what it accepts.

Kept apart from the HTTP layer so in-process tests can drive and inspect it directly and so
the rules read like Segment's documentation (``reference/segment-api.md`` §2):

* 32 KB per event, 500 KB per ``/v1/batch`` request, at most 2,500 events per batch;
* most bad events still get a 200 and are dropped afterwards (missing ``type``, track
  without ``event``, no ``userId``/``anonymousId``): they are counted as *rejected* with a
  reason instead of accepted, which is how a bridge's bug would look in Segment's debugger;
* ``messageId`` deduplication is global, across write keys, as Segment's is;
* the batch's top-level ``context``/``integrations`` are merged into each item.

Memory matters because benchmarks push a million messages through: each accepted message is
kept as its compact JSON bytes (plus three interned strings for filtering), not as a dict,
and ``keep_messages=False`` keeps only the messageId set and the counters. The emulator does
not apply Segment's clock-skew correction to ``timestamp``: tests compare the value the
bridge sent.
"""

from __future__ import annotations

import sys
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from sgbridge.emulators.segment_profiles import ProfileStore
from sgbridge.jsonbytes import dumps_kept

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500
MAX_MESSAGE_ID_CHARS = 100
MESSAGE_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
RECENT_REJECTIONS = 1000  # enough to debug a run without growing with it

# Rejection reasons, as reported by /_emulator/stats.
EVENT_TOO_LARGE = "event_too_large"
BATCH_LIMIT_EXCEEDED = "batch_limit_exceeded"
INVALID_EVENT = "invalid_event"
MISSING_TYPE = "missing_type"
INVALID_TYPE = "invalid_type"
NO_USER_ANON_ID = "no_user_anon_id"
MISSING_EVENT = "missing_event"
MISSING_GROUP_ID = "missing_group_id"
MISSING_PREVIOUS_ID = "missing_previous_id"
MESSAGE_ID_TOO_LONG = "message_id_too_long"


def _present(value: Any) -> bool:
    """Segment ids may be strings or numbers; null and "" count as absent."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, str):
        return value.strip() != ""
    return isinstance(value, int | float)


def validation_error(message: Mapping[str, Any], msg_type: str) -> str | None:
    """Why Segment would drop this (already typed) message after answering 200, or None."""
    if msg_type == "alias":
        if not _present(message.get("userId")):
            return NO_USER_ANON_ID
        if not _present(message.get("previousId")):
            return MISSING_PREVIOUS_ID
        return None
    if not (_present(message.get("userId")) or _present(message.get("anonymousId"))):
        return NO_USER_ANON_ID
    if msg_type == "track":
        event = message.get("event")
        if not isinstance(event, str) or event.strip() == "":
            return MISSING_EVENT
    if msg_type == "group" and not _present(message.get("groupId")):
        return MISSING_GROUP_ID
    return None


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SegmentEmulatorState:
    """Accepted messages, seen messageIds and counters of one emulator instance."""

    def __init__(self, write_keys: Iterable[str] | None = None, *, keep_messages: bool = True) -> None:
        self.write_keys: frozenset[str] | None = None if write_keys is None else frozenset(write_keys)
        self.keep_messages = keep_messages
        self.reset()

    def reset(self) -> None:
        # Parallel lists rather than a list of records: a million messages cost ~40 MB here.
        self._blobs: list[bytes] = []
        self._events: list[str | None] = []
        self._types: list[str] = []
        self._keys: list[str] = []
        self.seen_message_ids: set[str] = set()
        self.requests = 0
        self.batches = 0
        self.events_received = 0
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self.bad_requests = 0
        self.unauthorized = 0
        self.rejected_reasons: Counter[str] = Counter()
        self.recent_rejections: deque[dict[str, Any]] = deque(maxlen=RECENT_REJECTIONS)
        self.profiles = ProfileStore()  # what the Profile API answers: the identify calls accepted

    # -- auth ---------------------------------------------------------------------------

    def is_authorized(self, write_key: str | None) -> bool:
        if not write_key:
            return False
        return self.write_keys is None or write_key in self.write_keys

    # -- ingestion ------------------------------------------------------------------------

    def reject(self, reason: str, item: Any, write_key: str) -> None:
        self.rejected += 1
        self.rejected_reasons[reason] += 1
        entry: dict[str, Any] = {"reason": reason, "writeKey": write_key}
        if isinstance(item, Mapping):
            for key in ("type", "event", "messageId", "userId", "anonymousId"):
                if key in item:
                    entry[key] = item[key]
        self.recent_rejections.append(entry)

    def ingest_batch(self, payload: Mapping[str, Any], write_key: str) -> None:
        """Apply a parsed ``/v1/batch`` body whose ``batch`` is already known to be a list."""
        items: list[Any] = payload["batch"]
        self.batches += 1
        defaults = {k: payload[k] for k in ("context", "integrations") if isinstance(payload.get(k), dict)}
        sent_at = payload.get("sentAt")
        received_at = utc_now_iso()
        for index, item in enumerate(items):
            self.events_received += 1
            if index >= MAX_BATCH_EVENTS:
                self.reject(BATCH_LIMIT_EXCEEDED, item, write_key)
                continue
            # Size is what the client sent for this event, before the batch defaults are merged in.
            if isinstance(item, dict) and len(orjson.dumps(item)) > MAX_EVENT_BYTES:
                self.reject(EVENT_TOO_LARGE, item, write_key)
                continue
            self._ingest_one(item, write_key, received_at, None, defaults, sent_at)

    def ingest_single(self, payload: dict[str, Any], msg_type: str, write_key: str) -> None:
        """Apply the body of ``/v1/track`` & co; the endpoint, not the body, sets the type."""
        self.events_received += 1
        self._ingest_one(payload, write_key, utc_now_iso(), msg_type, {}, None)

    def _ingest_one(
        self,
        item: Any,
        write_key: str,
        received_at: str,
        forced_type: str | None,
        defaults: Mapping[str, dict[str, Any]],
        sent_at: Any,
    ) -> None:
        if not isinstance(item, dict):
            self.reject(INVALID_EVENT, item, write_key)
            return
        msg_type = forced_type if forced_type is not None else item.get("type")
        if msg_type is None:
            self.reject(MISSING_TYPE, item, write_key)
            return
        if msg_type not in MESSAGE_TYPES:
            self.reject(INVALID_TYPE, item, write_key)
            return
        message = dict(item)
        for key, default in defaults.items():
            own = message.get(key)
            # Shallow merge, the item's own keys win: Segment "merges" the batch-level object.
            message[key] = {**default, **own} if isinstance(own, dict) else dict(default)
        reason = validation_error(message, msg_type)
        if reason is not None:
            self.reject(reason, item, write_key)
            return
        raw_id = message.get("messageId")
        message_id = str(raw_id) if _present(raw_id) else f"api-{uuid.uuid4()}"
        if len(message_id) > MAX_MESSAGE_ID_CHARS:
            self.reject(MESSAGE_ID_TOO_LONG, item, write_key)
            return
        if message_id in self.seen_message_ids:
            self.duplicates += 1
            return
        self.seen_message_ids.add(message_id)
        message["messageId"] = message_id
        message["type"] = msg_type
        message["writeKey"] = write_key
        message["receivedAt"] = received_at
        if sent_at is not None and "sentAt" not in message:
            message["sentAt"] = sent_at
        message.setdefault("timestamp", received_at)  # Segment stamps messages sent without one
        self.accepted += 1
        if msg_type == "identify":
            self.profiles.apply_identify(message)
        if self.keep_messages:
            event = message.get("event")
            # orjson hands back a buffer with ~4 KB of spare capacity; copying it to an exact-size
            # bytes object is what keeps a million stored messages at ~0.4 GB instead of ~4 GB.
            self._blobs.append(dumps_kept(message))
            self._events.append(sys.intern(event) if isinstance(event, str) else None)
            self._types.append(sys.intern(msg_type))
            self._keys.append(sys.intern(write_key))

    # -- queries ----------------------------------------------------------------------------

    def _select(self, event: str | None, msg_type: str | None, write_key: str | None) -> list[int] | range:
        if event is None and msg_type is None and write_key is None:
            return range(len(self._blobs))
        return [
            i
            for i in range(len(self._blobs))
            if (event is None or self._events[i] == event)
            and (msg_type is None or self._types[i] == msg_type)
            and (write_key is None or self._keys[i] == write_key)
        ]

    def messages_json(
        self,
        *,
        offset: int = 0,
        limit: int | None = None,
        event: str | None = None,
        msg_type: str | None = None,
        write_key: str | None = None,
    ) -> bytes:
        """``{"messages": [...], "total": N}`` built from the stored bytes without re-encoding."""
        selected = self._select(event, msg_type, write_key)
        end = None if limit is None else offset + limit
        page = b",".join(self._blobs[i] for i in selected[offset:end])
        return b'{"messages":[' + page + b'],"total":' + str(len(selected)).encode() + b"}"

    def messages(
        self,
        *,
        offset: int = 0,
        limit: int | None = None,
        event: str | None = None,
        msg_type: str | None = None,
        write_key: str | None = None,
    ) -> list[dict[str, Any]]:
        selected = self._select(event, msg_type, write_key)
        end = None if limit is None else offset + limit
        return [orjson.loads(self._blobs[i]) for i in selected[offset:end]]

    @property
    def stored_messages(self) -> int:
        return len(self._blobs)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "batches": self.batches,
            "events_received": self.events_received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejected_reasons": dict(self.rejected_reasons),
            "bad_requests": self.bad_requests,
            "unauthorized": self.unauthorized,
            "unique_message_ids": len(self.seen_message_ids),
            "stored_messages": len(self._blobs),
            "keep_messages": self.keep_messages,
        }
