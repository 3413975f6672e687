"""Parse a verified Event Webhook body into journal-ready events.

Parsing is strict about the envelope (a JSON array of objects, or 400 with a reason, nothing
stored) and lenient about the events themselves: SendGrid's fields vary by event type, account
and age (string or array ``category``, string ``attempt``, seconds or milliseconds), so events
are stored exactly as sent and interpreted later by the mapping.
"""

from __future__ import annotations

import hashlib
import zlib

import orjson

from sgbridge.model import InboundEvent


class BadPayload(ValueError):
    """The body is not something SendGrid would send; the message is returned to the sender."""


class PayloadTooLarge(BadPayload):
    pass


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding: gzip`` without letting a small bomb inflate past the limit."""
    if not encoding or encoding.strip().lower() == "identity":
        return body
    if encoding.strip().lower() not in ("gzip", "x-gzip"):
        raise BadPayload(f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadPayload(f"body is not valid gzip: {exc}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body is over the {max_bytes}-byte limit")
    return out


def _key(source: bytes, value: bytes) -> bytes:
    return hashlib.blake2b(source + b"\0" + value, digest_size=16).digest()


def parse_events(source: str, body: bytes) -> list[InboundEvent]:
    """Split a webhook body into events with their dedupe keys; BadPayload if malformed."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPayload(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise BadPayload(f"body must be a JSON array of event objects, got {type(data).__name__}")
    source_b = source.encode()
    events: list[InboundEvent] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise BadPayload(f"item {index} is {type(item).__name__}, expected an event object")
        raw_id = item.get("sg_event_id")
        event_type = item.get("event")
        event_type = event_type if isinstance(event_type, str) else ""
        # The fingerprint leaves the id out because SendGrid may re-send an event under a new id.
        content = {k: v for k, v in item.items() if k != "sg_event_id"}
        fp_key = _key(source_b, orjson.dumps(content, option=orjson.OPT_SORT_KEYS))
        id_key = _key(source_b, str(raw_id).encode()) if raw_id not in (None, "") else None
        events.append(InboundEvent(source, event_type, id_key, fp_key, orjson.dumps(item)))
    return events
