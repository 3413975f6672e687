"""What workflows see of a stored event, whose run it is, and the profile traits it changes.

Every stored event reaches the workflows as a Segment call: Segment-born events as they came,
SendGrid's as the track calls they become (``routing.sendgrid_to_segment``), so "Email Bounced"
can start or end a flow. Profiles keep identify traits, plus engagement traits computed from
SendGrid's events (names: ``ENGAGEMENT_TRAITS``, documented in docs/workflows.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from sgbridge.actions.engage import engage_membership, personas_of
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
# Unsubscribe groups: the ids a contact is out of (a list), and a flag per group, true on
# group_unsubscribe, false on group_resubscribe (``unsubscribed_group_42``).
UNSUBSCRIBED_GROUPS = "unsubscribed_groups"
GROUP_FLAG = "unsubscribed_group_<id>"
GROUP_TIMES = ("last_group_unsubscribe_at", "last_group_resubscribe_at")
# Every trait name sgbridge computes (workflow_engine.trait_names renames them).
COMPUTED_TRAITS = frozenset({n for names in ENGAGEMENT_TRAITS.values() for n in names if n}
                            | {UNSUBSCRIBED_GROUPS, GROUP_FLAG, *GROUP_TIMES})


@dataclass(frozen=True, slots=True)
class TraitNames:
    """The names of the computed traits, with the configured renames."""

    renames: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, name: str) -> str:
        return self.renames.get(name, name)

    def group(self, group: int) -> str:
        return self(GROUP_FLAG).replace("<id>", str(group))


DEFAULT_NAMES = TraitNames()


def check_trait_names(renames: Mapping[str, str]) -> None:
    """ValueError for a rename of a name sgbridge does not compute, or a clash."""
    for name, new in renames.items():
        if name not in COMPUTED_TRAITS:
            raise ValueError(f"workflow_engine.trait_names.{name}: not a trait sgbridge computes "
                             f"({', '.join(sorted(COMPUTED_TRAITS))})")
        if not isinstance(new, str) or not new.strip():
            raise ValueError(f"workflow_engine.trait_names.{name}: a trait name")
        if name == GROUP_FLAG and "<id>" not in new:
            raise ValueError(f"workflow_engine.trait_names.{name}: must contain <id> (the group's id)")
    final = [renames.get(n, n) for n in COMPUTED_TRAITS]
    if len(set(final)) != len(final):
        raise ValueError("workflow_engine.trait_names: two computed traits would have the same name")
# What sgbridge itself sends to Segment: its track calls of SendGrid's events, and the identify
# calls of workflow steps. Coming back through Segment (a Segment destination pointed at
# sgbridge), they are echoes, not events: workflows ignore them, so nothing goes round in circles.
LIBRARY = "sgbridge"
WORKFLOWS_LIBRARY = "sgbridge-workflows"
OWN_LIBRARIES = frozenset({LIBRARY, WORKFLOWS_LIBRARY})


def segment_call(stored: StoredEvent, user_id_arg: str | None = "segment_user_id") -> dict[str, Any] | None:
    """The event as a Segment call; None if it is not one (a SendGrid event Segment would drop)."""
    body = orjson.loads(stored.body)
    if stream_of(stored.source) == SEGMENT:
        return body if isinstance(body, dict) and not is_echo(body) else None
    if not isinstance(body, dict):
        return None
    call = to_segment_track(body, key=stored.key, received_at=stored.received_at,
                            selected=SELECTABLE_FOR_WORKFLOWS, user_id_arg=user_id_arg)
    if isinstance(call, Skip):
        return None
    call["_sendgrid_event"] = selection_name(body)  # the engagement traits (machine opens apart)
    return call


def is_echo(call: dict[str, Any]) -> bool:
    """A Segment call sgbridge sent (``context.library.name``), come back through Segment."""
    context = call.get("context")
    library = context.get("library") if isinstance(context, dict) else None
    return isinstance(library, dict) and library.get("name") in OWN_LIBRARIES


def _group_of(event: dict[str, Any]) -> int | None:
    properties = event.get("properties")
    group = properties.get("unsubscribe_group_id") if isinstance(properties, dict) else None
    try:
        return int(group) if group is not None and not isinstance(group, bool) else None
    except (TypeError, ValueError):
        return None


def set_suppressed(traits: dict[str, Any], group: int | None, suppressed: bool,
                   names: TraitNames = DEFAULT_NAMES) -> None:
    """A profile's opt-out state: on the global list (``group`` None: ``unsubscribed``) or in a group."""
    if group is None:
        traits[names("unsubscribed")] = suppressed
        return
    groups = {int(g) for g in traits.get(names(UNSUBSCRIBED_GROUPS)) or [] if isinstance(g, int)}
    traits[names(UNSUBSCRIBED_GROUPS)] = sorted(groups | {group} if suppressed else groups - {group})
    traits[names.group(group)] = suppressed


def is_suppressed(traits: dict[str, Any], group: int | None, names: TraitNames = DEFAULT_NAMES) -> bool:
    return traits.get(names("unsubscribed") if group is None else names.group(group)) is True


def opt_out_traits(event: dict[str, Any], names: TraitNames = DEFAULT_NAMES) -> dict[str, Any]:
    """The opt-out traits a SendGrid event sets (empty for others): what an identify step sends to
    Segment as ``$.opt_out`` — only what this event changed, never what came from Segment."""
    kind = event.get("_sendgrid_event")
    traits: dict[str, Any] = {}
    if kind in ("unsubscribe", "spamreport", "bounce"):
        flag = ENGAGEMENT_TRAITS[str(kind)][2]
        assert flag is not None
        traits[names(flag)] = True
    elif kind in ("group_unsubscribe", "group_resubscribe") and (group := _group_of(event)) is not None:
        traits[names.group(group)] = kind == "group_unsubscribe"
    if traits and (email := email_of(event)):
        traits["email"] = email
    return traits


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


def apply_to_profile(traits: dict[str, Any], event: dict[str, Any], names: TraitNames = DEFAULT_NAMES) -> bool:
    """Change ``traits`` by one event; True if anything changed."""
    changed = False
    if event.get("type") == "identify" and isinstance(event.get("traits"), dict):
        for name, value in event["traits"].items():
            if traits.get(name) != value:
                traits[name] = value
                changed = True
    membership = engage_membership(event)
    if membership is not None and event.get("type") == "track":  # an audience entered or exited
        _, audience = personas_of(event)
        if traits.get(audience) is not membership:
            traits[audience] = membership
            changed = True
    kind = event.get("_sendgrid_event")
    if isinstance(kind, str) and kind in ENGAGEMENT_TRAITS:
        when, count, flag = ENGAGEMENT_TRAITS[kind]
        stamp = event.get("timestamp")
        if when:
            traits[names(when)] = stamp
        if count:
            traits[names(count)] = int(traits.get(names(count)) or 0) + 1
        if flag:
            traits[names(flag)] = True
        changed = True
    if kind in ("group_unsubscribe", "group_resubscribe") and (group := _group_of(event)) is not None:
        out = kind == "group_unsubscribe"
        set_suppressed(traits, group, out, names)
        traits[names(GROUP_TIMES[0] if out else GROUP_TIMES[1])] = event.get("timestamp")
        changed = True
    email = email_of(event)
    if email and "email" not in traits:
        traits["email"] = email
        changed = True
    return changed


def visible(event: dict[str, Any]) -> dict[str, Any]:
    """The event as conditions and mappings see it (without sgbridge's own marks)."""
    return {k: v for k, v in event.items() if not k.startswith("_sendgrid")}
