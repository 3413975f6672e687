"""What the journal keeps: only events that every consumer of the log can read.

The consumers (the Segment destination, the warehouse loader, the actions, ``sgbridge events
show`` and ``sgbridge dead-letters list``) read stored events with ``orjson`` and write what they
make of them with ``orjson`` too. So an event is stored only if

- ``orjson`` reads it: UTF-8 text (no invalid bytes, no lone surrogate escapes) and every number
  finite as a double (``1e400`` reads as infinity, which orjson refuses), and
- it is nested at most ``MAX_DEPTH`` levels deep (orjson reads 1,024 levels but writes only 254,
  and a consumer wraps an event in a few levels of its own before writing it).

Anything else is refused at the door with the reason (see docs/architecture.md, "What the journal
keeps"). The checks are cheap on what SendGrid and Segment really send: one orjson pass over a body
says whether any event breaks the rules on text and numbers, and counting an event's brackets says
whether it can be nested too deep; only then is an event read and walked in Python.
"""

from __future__ import annotations

from typing import Any

import orjson

# Real events are a few levels deep (SendGrid's are flat; Segment's properties rarely pass 5).
MAX_DEPTH = 64


def may_be_too_deep(raw: bytes) -> bool:
    """Cheap: an event with at most MAX_DEPTH opening brackets cannot be nested deeper."""
    return raw.count(b"{") + raw.count(b"[") > MAX_DEPTH


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed value nests objects or arrays more than ``limit`` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if type(item) is dict else item
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def too_deep_reason() -> str:
    return f"is nested more than {MAX_DEPTH} levels deep"


def unreadable(raw: bytes) -> str | None:
    """Why the journal cannot keep this event (one JSON value, as bytes), or None."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"cannot be read as JSON by the journal's consumers: {_reason(exc)}"
    if type(value) in (dict, list) and may_be_too_deep(raw) and too_deep(value):  # the count first: cheap
        return too_deep_reason()
    return None


def _reason(exc: orjson.JSONDecodeError) -> str:
    message = str(exc)
    # orjson's "str is not valid UTF-8: surrogates not allowed" names the wrong cause for plain
    # invalid bytes.
    if "not valid UTF-8" in message:
        return "text is not valid UTF-8"
    return message.split(": line ", 1)[0]


def load_for_display(raw: bytes) -> tuple[Any, str | None]:
    """An event as a tool shows it: the parsed value, or (the bytes as text, why it is not JSON) for
    events stored before these rules (or by another version); never raises."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return raw.decode("utf-8", "backslashreplace"), f"stored event is not readable JSON: {_reason(exc)}"
    if type(value) in (dict, list) and too_deep(value, 250):
        return raw.decode("utf-8", "backslashreplace"), "stored event is nested too deep to show as JSON"
    return value, None


def top_level_fields(raw: bytes) -> dict[str, Any]:
    """An event's object for picking out its names and ids, whatever else is wrong with it: orjson
    reads 1,024 levels; Python's reader takes numbers no double holds (``1e400``, as infinity)."""
    import json

    for read in (orjson.loads, json.loads):
        try:
            value = read(raw)
        except (ValueError, RecursionError):
            continue
        return value if isinstance(value, dict) else {}
    return {}
