"""SendGrid Event Webhook event → Segment track call, named and shaped like SendGrid's own
"SendGrid Marketing Campaigns" source (seed 002), plus the fields that source leaves out
(ids, bounce/drop reasons, custom args) so nothing SendGrid said is lost.

The table of names and properties is documented in docs/mapping.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sgbridge import __version__
from sgbridge.routing.identity import anonymous_id_for_email, message_id_for

EVENT_NAMES = {
    "processed": "Email Processed",
    "delivered": "Email Delivered",
    "open": "Email Opened",
    "click": "Email Link Clicked",
    "dropped": "Email Dropped",
    "bounce": "Email Bounced",
    "deferred": "Email Deferred",
    "unsubscribe": "Unsubscribed",
    "group_unsubscribe": "Unsubscribed From Group",
    "group_resubscribe": "Resubscribed To Group",
    "spamreport": "Email Marked as Spam",
}
MACHINE_OPEN_NAME = "Email Machine Opened"
# Every event type, machine opens apart: what workflows see (a source's selection is for Segment only).
SELECTABLE_FOR_WORKFLOWS = frozenset((*EVENT_NAMES, "machine_open"))

# Events where `ip`/`useragent` are the recipient's (the source's `context.traits.ip` is "the
# opening computer's public IP address"); on delivery events `ip` is SendGrid's sending IP.
_RECIPIENT_IP_EVENTS = {"open", "click", "unsubscribe", "group_unsubscribe", "group_resubscribe", "spamreport"}

# Fields SendGrid itself sets. Anything else at the top level of an event is a custom arg.
SYSTEM_FIELDS = frozenset({
    "email", "timestamp", "event", "smtp-id", "sg_event_id", "sg_message_id", "category", "reason",
    "status", "response", "attempt", "type", "bounce_classification", "ip", "tls", "cert_err",
    "useragent", "url", "url_offset", "sg_content_type", "sg_machine_open", "asm_group_id", "pool",
    "send_at", "marketing_campaign_id", "marketing_campaign_name", "marketing_campaign_version",
    "marketing_campaign_split_id", "post_type", "sg_user_id", "singlesend_id", "singlesend_name",
    "mc_stats", "phase_id", "template_id", "template_hash", "template_version_id", "sg_template_id",
    "sg_template_name", "mc_auto_id", "mc_auto_name", "mc_auto_step_id", "mc_auto_msg_id",
    "mc_auto_unique_id", "mc_pod_id", "newsletter", "domain", "from",
})

# SendGrid field → property, copied when present (the source's names first, then ours).
_COPIED = (
    ("sg_event_id", "sg_event_id"), ("sg_message_id", "sg_message_id"), ("smtp-id", "smtp_id"),
    ("reason", "reason"), ("status", "status"), ("bounce_classification", "bounce_classification"),
    ("response", "response"), ("tls", "tls"), ("sg_content_type", "sg_content_type"),
    ("url_offset", "url_offset"), ("marketing_campaign_version", "campaign_version"),
)


@dataclass(frozen=True, slots=True)
class Skip:
    """The event is not forwarded; ``rejected`` marks bad input rather than configuration."""

    reason: str
    rejected: bool = False


def selection_name(event: dict[str, Any]) -> str:
    """The name used by per-source event selection (``machine_open`` for Apple MPP opens)."""
    kind = str(event.get("event", ""))
    if kind == "open" and event.get("sg_machine_open") is True:
        return "machine_open"
    return kind


def event_time(event: dict[str, Any], fallback: float) -> str:
    """ISO-8601 UTC with milliseconds; SendGrid sends seconds, milliseconds or a numeric string."""
    raw = event.get("timestamp")
    try:
        value = float(raw) if raw is not None and not isinstance(raw, bool) else fallback
    except (TypeError, ValueError):
        value = fallback
    if value > 1e12:  # milliseconds (Single Send events)
        value /= 1000.0
    if not 0 < value < 32503680000:  # outside year 1970..3000: not a time we can trust
        value = fallback
    return iso_utc_ms(value)


def iso_utc_ms(value: float) -> str:
    """``datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")`` with a ``Z``, for
    ``value`` > 0, at a fraction of its cost: the events of a window share few seconds, so each
    second's text is made once (it was a tenth of the deliver process's CPU). Microseconds are
    rounded half to even, then cut to milliseconds, as ``datetime`` does."""
    second = int(value)
    if second == value:  # SendGrid's usual: whole seconds
        return _whole_second(second)
    fraction, whole = math.modf(value)
    second, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return f"{_utc_second(second)}.{micros // 1000:03d}Z"


@lru_cache(maxsize=65_536)
def _utc_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@lru_cache(maxsize=65_536)
def _whole_second(second: int) -> str:
    return f"{_utc_second(second)}.000Z"


def _categories(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _int_or_same(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _properties(event: dict[str, Any], kind: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    # Custom args first, so a custom arg can never overwrite what SendGrid reported.
    for key, value in event.items():
        if key not in SYSTEM_FIELDS:
            props[key] = value
    for field, name in _COPIED:
        if field in event:
            props[name] = event[field]
    if "type" in event and kind == "bounce":
        props["type"] = event["type"]
    if "attempt" in event:
        props["attempt"] = _int_or_same(event["attempt"])
    if kind not in _RECIPIENT_IP_EVENTS and event.get("ip"):
        props["sending_ip"] = event["ip"]
    categories = _categories(event.get("category"))
    if categories is not None:
        props["categories"] = categories
    if kind == "click" and "url" in event:
        props["link_url"] = event["url"]
    if "asm_group_id" in event:
        props["unsubscribe_group_id"] = event["asm_group_id"]
    template = event.get("template_id") or event.get("sg_template_id")
    if template:
        props["template_id"] = template
    if "sg_template_name" in event:
        props["template_name"] = event["sg_template_name"]
    if subject := event.get("subject") or event.get("email_subject"):
        props["email_subject"] = subject
    if event.get("singlesend_id") or event.get("mc_stats") == "singlesend":
        props["email_type"] = "Singlesend"
        props["campaign_id"] = event.get("singlesend_id")
        props["campaign_name"] = event.get("singlesend_name")
        props["test_phase"] = str(event.get("phase_id", "send")).lower() == "test"
    elif event.get("mc_auto_id") or event.get("mc_stats") == "automation":
        props["email_type"] = "Automation"
        props["automation_id"] = event.get("mc_auto_id")
        props["automation_name"] = event.get("mc_auto_name")
        props["automation_step_id"] = event.get("mc_auto_step_id")
    elif "marketing_campaign_id" in event:  # legacy Marketing Campaigns
        props["campaign_id"] = event["marketing_campaign_id"]
        props["campaign_name"] = event.get("marketing_campaign_name")
    return {k: v for k, v in props.items() if v is not None}


def to_segment_track(
    event: dict[str, Any],
    *,
    key: bytes,
    received_at: float,
    selected: frozenset[str] | set[str],
    user_id_arg: str | None = None,
) -> dict[str, Any] | Skip:
    """Map one event; a ``Skip`` says why it is not forwarded."""
    kind = str(event.get("event", ""))
    if kind not in EVENT_NAMES:
        return Skip(f"unknown event type {kind!r}: stored, not forwarded")
    if selection_name(event) not in selected:
        return Skip(f"event type {selection_name(event)!r} is not selected for this source")
    email = event.get("email")
    user_id = event.get(user_id_arg) if user_id_arg else None
    user_id = str(user_id) if user_id not in (None, "") else None
    if not isinstance(email, str) or not email.strip():
        if user_id is None:
            return Skip("event has no recipient email, so Segment would drop it (no anonymousId)", True)
        email = None
    traits: dict[str, Any] = {}
    if email:
        traits["email"] = email
    if kind in _RECIPIENT_IP_EVENTS:
        if event.get("ip"):
            traits["ip"] = event["ip"]
        if event.get("useragent"):
            traits["user_agent"] = event["useragent"]
    name = MACHINE_OPEN_NAME if selection_name(event) == "machine_open" else EVENT_NAMES[kind]
    message: dict[str, Any] = {
        "type": "track",
        "event": name,
        "messageId": message_id_for(key),
        "timestamp": event_time(event, received_at),
        "properties": _properties(event, kind),
        "context": {"traits": traits, "library": {"name": "sgbridge", "version": __version__}},
    }
    if email:
        message["anonymousId"] = anonymous_id_for_email(email)
    if user_id is not None:
        message["userId"] = user_id
    return message
