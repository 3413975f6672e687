"""Parse a verified Event Webhook body into journal-ready events.

Parsing is strict about the envelope (a JSON array of objects, or 400 with a reason, nothing
stored) and lenient about the events themselves: SendGrid's fields vary by event type, account
and age (string or array ``category``, string ``attempt``, seconds or milliseconds), so events
are stored exactly as sent (byte for byte) and interpreted later by the mapping. The exception:
an event the journal's consumers could not read (inbound/readable.py), or whose ``sg_event_id`` or
``event`` the journal cannot key it by, is refused alone and listed in the answer's ``rejected``.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from sgbridge.inbound.readable import MAX_DEPTH, unreadable
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
_as_head = msgspec.json.Decoder(_Head)
_INT64 = range(-(2**63), 2**63)


@dataclass(slots=True)
class ParsedEvents:
    events: list[InboundEvent]
    # Events refused one by one, with the reason: the journal keeps only what every consumer can read
    # (inbound/readable.py). The others are stored: a 400 would make SendGrid retry the whole body
    # for 24 hours and then drop it, good events included.
    rejected: list[dict[str, Any]] = field(default_factory=list)


def parse_events(source: str, body: bytes) -> list[InboundEvent]:
    """The events of a webhook body that the journal can keep (see ``parse_body``)."""
    return parse_body(source, body).events


def parse_body(source: str, body: bytes) -> ParsedEvents:
    """Split a webhook body into events with their dedupe keys; BadPayload if malformed.

    Each event is stored as the exact bytes SendGrid sent for it (a slice of the body), so no
    re-encoding is done on the hot path. Two msgspec passes over the body (one for the slices, one
    for the two fields we need) and one orjson pass (is every event readable by the consumers?) cost
    less than decoding every event into Python objects one by one. An event the journal cannot keep
    is listed in ``rejected`` and the others are kept.
    """
    try:
        items = _as_raw_items.decode(body)  # checks the JSON syntax of the whole body
    except msgspec.ValidationError as exc:
        # Not an array: the typed decoder stops there, before it would see a syntax error further
        # on; on this (rare) path a full parse tells the two apart.
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as syntax:
            raise BadPayload(f"body is not valid JSON: {syntax}") from None
        raise BadPayload(_envelope_error(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise BadPayload(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # msgspec's answer to JSON nested deeper than Python's stack allows
        raise BadPayload("body is nested too deep to read (hundreds of levels of objects or arrays)") from None
    heads: list[_Head | None]
    try:
        heads = list(_as_heads.decode(body))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        if _not_an_object(exc):  # the body is not SendGrid's shape
            raise BadPayload(_envelope_error(str(exc))) from None
        # A value msgspec cannot read (a number out of range...): item by item.
        heads = [_head(item, i) for i, item in enumerate(items)]
    # orjson (what every consumer reads with) reads the whole body in one C pass, ~1 µs an event:
    # then no event breaks the rules on text and numbers. Otherwise the events are read one by one.
    try:
        orjson.loads(body)
        suspect_all = False
    except orjson.JSONDecodeError:
        suspect_all = True
    source_b = source.encode() + b"\0"
    blake2b = hashlib.blake2b
    parsed = ParsedEvents([])
    append = parsed.events.append
    for index, (head, item) in enumerate(zip(heads, items, strict=True)):
        stored = bytes(item)
        problem = None
        # Inline on the hot path: the cheap tests (C) say which events to read in Python.
        if head is None or suspect_all or stored.count(b"{") + stored.count(b"[") > MAX_DEPTH:
            problem = unreadable(stored) or (None if head is not None else "cannot be read")
        if problem is None and head is not None and (
                type(head.sg_event_id) is not str or (type(head.event) is str and "\0" in head.event)):
            problem = _head_problem(head)  # rare: a call only then
        if problem is not None or head is None:
            parsed.rejected.append({"index": index, "error": f"event {index} {problem}"})
            continue
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
            field_bytes = b'"sg_event_id":' + orjson.dumps(raw_id)
            at = stored.find(field_bytes)
            end = at + len(field_bytes)
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
    return parsed


def _head(item: msgspec.Raw, index: int) -> _Head | None:
    try:
        return _as_head.decode(item)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        if _not_an_object(exc):
            raise BadPayload(f"item {index} is not an event object ({exc})") from None
        return None  # unreadable: parse_body says why


def _not_an_object(exc: Exception) -> bool:
    return isinstance(exc, msgspec.ValidationError) and str(exc).startswith("Expected `object`")


def _head_problem(head: _Head) -> str | None:
    """The two fields the journal itself keys and files events by."""
    raw_id = head.sg_event_id
    if raw_id is not None and not isinstance(raw_id, str) and not (type(raw_id) is int and raw_id in _INT64):
        return "has an sg_event_id that is not a string (nor a whole number within 64 bits)"
    if isinstance(head.event, str) and "\0" in head.event:
        return "has a NUL character in `event`"
    return None


def _envelope_error(message: str) -> str:
    """msgspec says "Expected `object`, got `int` - at `$[1]`"; say it in SendGrid's terms."""
    if message.endswith("at `$`") or " - at " not in message:
        return f"body must be a JSON array of event objects ({message})"
    where = message.rsplit("`$[", 1)[-1].split("]", 1)[0]
    return f"item {where} is not an event object ({message})"
