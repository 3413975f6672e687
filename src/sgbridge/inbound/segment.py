"""Parse Segment events arriving at sgbridge into journal-ready events.

Two ways in, one result: Segment's Webhooks (Actions) destination posting to
``/webhooks/segment`` (one event, or a JSON array in batch mode), and Segment's own Tracking API
shape (``/v1/track``, ``/v1/batch``...) so Segment SDKs can send straight here. Either way each
event is stored once per ``messageId``: the webhook and the API share one dedupe namespace, as
Segment's own dedupe is global.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from sgbridge.inbound.readable import too_deep, too_deep_reason, unreadable
from sgbridge.inbound.sendgrid import BadPayload
from sgbridge.jsonbytes import dumps_kept
from sgbridge.model import InboundEvent

# Journal source names of Segment-born events; SendGrid source names cannot contain ':'.
WEBHOOK_SOURCE = "segment:webhook"
API_SOURCE = "segment:api"
TWILIO_SOURCE = "twilio:status"  # Twilio's status callbacks, as track calls (inbound/twilio.py)
SEGMENT_SOURCES = frozenset({WEBHOOK_SOURCE, API_SOURCE, TWILIO_SOURCE})  # the Segment stream's sources

EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
MAX_EVENT_BYTES = 32 * 1024  # Segment's per-event limit
MAX_BATCH_BYTES = 500 * 1024  # Segment's per-request limit for /v1/batch
MAX_BATCH_EVENTS = 2500

_raw_items = msgspec.json.Decoder(list[msgspec.Raw])


def verify_webhook_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """Segment's X-Signature: hex HMAC-SHA1 of the JSON it sent.

    In batch mode Segment signs only the first event of the array (its ``JSON.stringify``),
    so the first element's raw bytes, exactly as received, are what was signed.
    """
    if not signature or not signature.isascii():  # a hex digest is ASCII; compare_digest takes no other str
        return False
    signed = body
    if body.lstrip()[:1] == b"[":
        try:
            items = _raw_items.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # RecursionError: nested too deep
            return False
        if not items:
            return False
        signed = bytes(items[0])
    expected = hmac.new(secret.encode(), signed, hashlib.sha1).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def batch_length(body: bytes) -> int:
    """How many events a (signed) webhook body carries: 1 for an object."""
    if body.lstrip()[:1] != b"[":
        return 1
    try:
        return len(_raw_items.decode(body))
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return 1  # not readable: parsing refuses it with the reason


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _keys(message_id: str) -> tuple[bytes, bytes]:
    # One namespace for both ways in; the fingerprint column must be unique and non-null too,
    # and for Segment events the messageId is the whole identity.
    key = hashlib.blake2b(b"segment\0" + message_id.encode(), digest_size=16).digest()
    return key, hashlib.blake2b(b"segment-fp\0" + message_id.encode(), digest_size=16).digest()


# Segment's spec: these are JSON objects when present (null is taken as absent)...
_OBJECT_FIELDS = ("context", "integrations", "traits", "properties")
# ...these are strings (ISO-8601 dates, names)...
_TEXT_FIELDS = ("timestamp", "originalTimestamp", "sentAt", "name")
# ...and ids are strings; a whole number is made a string, as Segment's SDKs do.
_ID_FIELDS = ("userId", "anonymousId", "groupId", "previousId")


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def normalise(item: Any, index: int, source: str, received_at: str, default_type: str | None = None,
              defaults: dict[str, Any] | None = None) -> InboundEvent:
    """Check one Segment event, fill in what Segment fills in, and key it by messageId."""
    where = f"event {index}" if index >= 0 else "event"
    if not isinstance(item, dict):
        raise BadPayload(f"{where} is {_json_type(item)}, expected a JSON object")
    event = dict(item)
    kind = event.get("type") or default_type
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        shown = repr(kind) if isinstance(kind, str) or kind is None else _json_type(kind)
        raise BadPayload(f"{where} has type {shown[:80]}; expected one of {sorted(EVENT_TYPES)}")
    event["type"] = kind
    for key in _OBJECT_FIELDS:
        value = event.get(key)
        if value is not None and type(value) is not dict:
            raise BadPayload(f"{where} has `{key}` as {_json_type(value)}; Segment's spec wants an object")
    for key in _TEXT_FIELDS:
        value = event.get(key)
        if value is not None and type(value) is not str:
            raise BadPayload(f"{where} has `{key}` as {_json_type(value)}; Segment's spec wants a string")
    for key in _ID_FIELDS:
        value = event.get(key)
        if type(value) is int:
            event[key] = str(value)
        elif value is not None and type(value) is not str:
            raise BadPayload(f"{where} has `{key}` as {_json_type(value)}; Segment's spec wants a string")
    if defaults:
        for key in ("context", "integrations"):
            if isinstance(defaults.get(key), dict):
                event[key] = {**defaults[key], **(event.get(key) or {})}
    if kind == "track" and not isinstance(event.get("event"), str):
        raise BadPayload(f"{where} is a track call without an `event` name")
    if not event.get("userId") and not event.get("anonymousId") and kind != "alias":
        raise BadPayload(f"{where} has neither userId nor anonymousId")
    message_id = event.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        # Segment assigns one when the sender did not; such an event cannot be deduplicated.
        message_id = f"sgb-{uuid.uuid4()}"
        event["messageId"] = message_id
    if len(message_id) > 100:
        raise BadPayload(f"{where} has a messageId over 100 characters")
    if "\0" in message_id:  # the journal files emails by messageId in text columns, which cannot hold NUL
        raise BadPayload(f"{where} has a NUL character in its messageId")
    if too_deep(event):
        raise BadPayload(f"{where} {too_deep_reason()}")
    event.pop("writeKey", None)
    event["receivedAt"] = received_at
    body = dumps_kept(event)  # kept until the journal writer has it: exact size (jsonbytes.py)
    if len(body) > MAX_EVENT_BYTES:
        raise BadPayload(f"{where} is {len(body)} bytes, over Segment's {MAX_EVENT_BYTES}-byte limit")
    id_key, fp_key = _keys(message_id)
    return InboundEvent(source, kind, id_key, fp_key, body)


@dataclass(slots=True)
class Parsed:
    events: list[InboundEvent]
    # Events refused one by one (as Segment does after its 200): index and reason, for the reply.
    rejected: list[dict[str, Any]] = field(default_factory=list)
    write_key: str | None = None


class _Unreadable:
    """An item of a batch that the journal's consumers could not read (see inbound/readable.py)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _collect(items: list[Any], source: str, single: bool, **kwargs: Any) -> Parsed:
    parsed = Parsed([])
    received_at = _now_iso()
    for i, item in enumerate(items):
        try:
            if isinstance(item, _Unreadable):
                raise BadPayload(f"event {i} {item.reason}")
            parsed.events.append(normalise(item, -1 if single else i, source, received_at, **kwargs))
        except BadPayload as exc:
            if single:
                raise
            parsed.rejected.append({"index": i, "error": str(exc)})
    return parsed


def parse_webhook(body: bytes) -> Parsed:
    """A Webhooks (Actions) destination body: one event object or an array of them."""
    data = _loads(body, batch=lambda: _raw_items.decode(body))
    if isinstance(data, list):
        return _collect(data, WEBHOOK_SOURCE, single=False)
    return _collect([data], WEBHOOK_SOURCE, single=True)


class _BatchEnvelope(msgspec.Struct):
    """A /v1/batch body read without its events' contents, when one of them cannot be read."""

    batch: msgspec.Raw = msgspec.Raw()
    context: msgspec.Raw = msgspec.Raw()
    integrations: msgspec.Raw = msgspec.Raw()
    writeKey: msgspec.Raw = msgspec.Raw()


_batch_envelope = msgspec.json.Decoder(_BatchEnvelope)


def _batch_items(body: bytes) -> Any:
    envelope = _batch_envelope.decode(body)
    data: dict[str, Any] = {}
    for key in ("context", "integrations", "writeKey"):
        raw = getattr(envelope, key)
        if len(raw):
            data[key] = orjson.loads(bytes(raw))  # a broken envelope is a 400 for the whole body
    if len(envelope.batch):
        data["batch"] = _raw_items.decode(envelope.batch)
    return data


def parse_tracking_call(kind: str, body: bytes) -> Parsed:
    """A Tracking API call (``/v1/<kind>``), with the body's writeKey if it carries one."""
    data = _loads(body, batch=(lambda: _batch_items(body)) if kind == "batch" else None)
    if not isinstance(data, dict):
        raise BadPayload("body must be a JSON object")
    write_key = data.get("writeKey") if isinstance(data.get("writeKey"), str) else None
    if kind != "batch":
        if len(body) > MAX_EVENT_BYTES:
            raise BadPayload(f"body is over Segment's {MAX_EVENT_BYTES}-byte limit per call")
        parsed = _collect([data], API_SOURCE, single=True, default_type=kind)
    else:
        if len(body) > MAX_BATCH_BYTES:
            raise BadPayload(f"batch is over Segment's {MAX_BATCH_BYTES}-byte limit")
        batch = data.get("batch")
        if not isinstance(batch, list):
            raise BadPayload("a /v1/batch body needs a `batch` array")
        if len(batch) > MAX_BATCH_EVENTS:
            raise BadPayload(f"batch has {len(batch)} events; Segment takes at most {MAX_BATCH_EVENTS}")
        for key in ("context", "integrations"):
            if data.get(key) is not None and type(data[key]) is not dict:
                raise BadPayload(f"the batch's `{key}` is {_json_type(data[key])}; Segment's spec wants an object")
        defaults = {k: data[k] for k in ("context", "integrations") if k in data}
        parsed = _collect(batch, API_SOURCE, single=False, defaults=defaults)
    parsed.write_key = write_key
    return parsed


def _loads(body: bytes, batch: Callable[[], Any] | None = None) -> Any:
    """The body's JSON. When a batch body cannot be read whole, ``batch`` reads its envelope with
    each event as raw bytes, so that an event the journal cannot keep is refused alone."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    if batch is not None:
        try:
            data = batch()
        except (msgspec.DecodeError, msgspec.ValidationError, orjson.JSONDecodeError, RecursionError):
            pass
        else:
            if isinstance(data, dict) and isinstance(data.get("batch"), list):
                data["batch"] = [_item(raw) for raw in data["batch"]]
                return data
            if isinstance(data, list):
                return [_item(raw) for raw in data]
    raise BadPayload(f"body is not valid JSON: {error}") from None


def _item(raw: msgspec.Raw) -> Any:
    data = bytes(raw)
    problem = unreadable(data)
    return _Unreadable(problem) if problem else orjson.loads(data)
