"""Parse a verified Event Webhook body into journal-ready events.

Parsing is strict about the envelope (a JSON array of objects, or 400 with a reason, nothing
stored) and lenient about the events themselves: SendGrid's fields vary by event type, account
and age (string or array ``category``, string ``attempt``, seconds or milliseconds), so events
are stored exactly as sent (byte for byte) and interpreted later by the mapping.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import msgspec
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


class _Head(msgspec.Struct):
    """The two fields ingestion needs; msgspec skips every other field without building it."""

    event: Any = None
    sg_event_id: Any = None


_as_raw_items = msgspec.json.Decoder(list[msgspec.Raw])
_as_heads = msgspec.json.Decoder(list[_Head])


def parse_events(source: str, body: bytes) -> list[InboundEvent]:
    """Split a webhook body into events with their dedupe keys; BadPayload if malformed.

    Each event is stored as the exact bytes SendGrid sent for it (a slice of the body), so no
    re-encoding is done on the hot path. Two C passes over the body (one for the slices, one
    for the two fields we need) cost less than decoding every event into Python objects.
    """
    try:
        heads = _as_heads.decode(body)
        items = _as_raw_items.decode(body)
    except msgspec.ValidationError as exc:
        # The typed decoder stops at the first wrong type, before it would see a syntax error
        # further on; on this (rare) path a full parse tells the two apart.
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as syntax:
            raise BadPayload(f"body is not valid JSON: {syntax}") from None
        raise BadPayload(_envelope_error(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise BadPayload(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # msgspec's answer to JSON nested deeper than Python's stack allows
        raise BadPayload("body is nested too deep to read (hundreds of levels of objects or arrays)") from None
    source_b = source.encode() + b"\0"
    blake2b = hashlib.blake2b
    events: list[InboundEvent] = []
    append = events.append
    for head, item in zip(heads, items, strict=True):
        stored = bytes(item)
        raw_id = head.sg_event_id
        fingerprint = blake2b(source_b, digest_size=16)
        if raw_id is None or raw_id == "":
            id_key = None
            fingerprint.update(stored)
        else:
            id_key = blake2b(source_b + str(raw_id).encode(), digest_size=16).digest()
            # The fingerprint leaves the id out: SendGrid may re-send an event under a new id.
            # SendGrid writes compact JSON, so the field appears exactly like this; an event
            # written otherwise is fingerprinted whole (dedupe then relies on its id).
            field = b'"sg_event_id":' + orjson.dumps(raw_id)
            at = stored.find(field)
            end = at + len(field)
            if at < 0:
                fingerprint.update(stored)
            else:
                if stored[end:end + 1] == b",":
                    end += 1
                fingerprint.update(stored[:at])
                fingerprint.update(stored[end:])
        event_type = head.event
        append(InboundEvent(source, event_type if isinstance(event_type, str) else "", id_key,
                            fingerprint.digest(), stored))
    return events


def _envelope_error(message: str) -> str:
    """msgspec says "Expected `object`, got `int` - at `$[1]`"; say it in SendGrid's terms."""
    if message.endswith("at `$`") or " - at " not in message:
        return f"body must be a JSON array of event objects ({message})"
    where = message.rsplit("`$[", 1)[-1].split("]", 1)[0]
    return f"item {where} is not an event object ({message})"
