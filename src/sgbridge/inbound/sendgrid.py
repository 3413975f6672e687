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


def parse_events(source: str, body: bytes) -> list[InboundEvent]:
    """Split a webhook body into events with their dedupe keys; BadPayload if malformed."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPayload(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise BadPayload(f"body must be a JSON array of event objects, got {type(data).__name__}")
    source_b = source.encode() + b"\0"
    blake2b = hashlib.blake2b
    events: list[InboundEvent] = []
    append = events.append
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise BadPayload(f"item {index} is {type(item).__name__}, expected an event object")
        # Stored with sorted keys (SendGrid sends them sorted anyway), so the stored bytes are
        # canonical and double as the input of the content fingerprint.
        stored = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
        raw_id = item.get("sg_event_id")
        if raw_id is None or raw_id == "":
            id_key = None
            content = stored
        else:
            id_key = blake2b(source_b + str(raw_id).encode(), digest_size=16).digest()
            # The fingerprint leaves the id out: SendGrid may re-send an event under a new id.
            field = b'"sg_event_id":' + orjson.dumps(raw_id)
            at = stored.find(field)
            end = at + len(field)
            if stored[end:end + 1] == b",":
                end += 1  # keys are sorted, so a following key is always separated by one comma
            content = stored[:at] + stored[end:] if at >= 0 else stored
        event_type = item.get("event")
        append(InboundEvent(
            source,
            event_type if isinstance(event_type, str) else "",
            id_key,
            blake2b(source_b + content, digest_size=16).digest(),
            stored,
        ))
    return events
