"""What workflows see of a stored event, whose run it is, and the profile traits it changes.

Every stored event reaches the workflows as a Segment call: Segment-born events as they came,
SendGrid's as the track calls they become (``routing.sendgrid_to_segment``), so "Email Bounced"
can start or end a flow. Profiles keep identify traits, plus engagement traits computed from
SendGrid's events (names: ``ENGAGEMENT_TRAITS``, documented in docs/workflows.md).
"""

from __future__ import annotations

from typing import Any

import orjson

from sgbridge.journal.streams import SEGMENT, stream_of
from sgbridge.model import StoredEvent
from sgbridge.routing.sendgrid_to_segment import SELECTABLE_FOR_WORKFLOWS, Skip, selection_name, to_segment_track

# Engagement traits: SendGrid event type -> (the time trait, the count trait, a flag set true)
ENGAGEMENT_TRAITS: dict[str, tuple[str | None, str | None, str | None]] = {
    "delivered": ("last_email_delivered_at", "emails_delivered", None),
    "open": ("last_email_opened_at", "emails_opened", None),
    "click": ("last_email_clicked_at", "emails_clicked", None),
    "bounce": ("last_email_bounced_at", "emails_bounced", "email_bounced"),
    "dropped": ("last_email_dropped_at", None, None),
    "spamreport": ("last_spam_report_at", None, "spam_reported"),
    "unsubscribe": ("unsubscribed_at", None, "unsubscribed"),
}


def segment_call(stored: StoredEvent, user_id_arg: str | None = "segment_user_id") -> dict[str, Any] | None:
    """The event as a Segment call; None if it is not one (a SendGrid event Segment would drop)."""
    body = orjson.loads(stored.body)
    if stream_of(stored.source) == SEGMENT:
        return body if isinstance(body, dict) else None
    if not isinstance(body, dict):
        return None
    call = to_segment_track(body, key=stored.key, received_at=stored.received_at,
                            selected=SELECTABLE_FOR_WORKFLOWS, user_id_arg=user_id_arg)
    if isinstance(call, Skip):
        return None
    call["_sendgrid_event"] = selection_name(body)  # the engagement traits (machine opens apart)
    return call


def email_of(event: dict[str, Any]) -> str | None:
    for holder in (event.get("traits"), (event.get("context") or {}).get("traits")
                   if isinstance(event.get("context"), dict) else None, event.get("properties")):
        if isinstance(holder, dict) and isinstance(holder.get("email"), str) and holder["email"].strip():
            return str(holder["email"]).strip().lower()
    return None


def _path(event: dict[str, Any], dotted: str) -> Any:
    value: Any = event
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def key_of(event: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """Whose run it is: the first of ``keys`` the event has, as ``name:value``."""
    for name in keys:
        value: Any = email_of(event) if name == "email" else _path(event, name)
        if value is not None and not isinstance(value, dict | list | bool) and str(value) != "":
            return f"{name}:{value}"
    return None


def apply_to_profile(traits: dict[str, Any], event: dict[str, Any]) -> bool:
    """Change ``traits`` by one event; True if anything changed."""
    changed = False
    if event.get("type") == "identify" and isinstance(event.get("traits"), dict):
        for name, value in event["traits"].items():
            if traits.get(name) != value:
                traits[name] = value
                changed = True
    kind = event.get("_sendgrid_event")
    if isinstance(kind, str) and kind in ENGAGEMENT_TRAITS:
        when, count, flag = ENGAGEMENT_TRAITS[kind]
        stamp = event.get("timestamp")
        if when:
            traits[when] = stamp
        if count:
            traits[count] = int(traits.get(count) or 0) + 1
        if flag:
            traits[flag] = True
        changed = True
    email = email_of(event)
    if email and "email" not in traits:
        traits["email"] = email
        changed = True
    return changed


def visible(event: dict[str, Any]) -> dict[str, Any]:
    """The event as conditions and mappings see it (without sgbridge's own marks)."""
    return {k: v for k, v in event.items() if not k.startswith("_sendgrid")}
