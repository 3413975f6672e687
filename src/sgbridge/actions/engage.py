"""Audience membership of an event, by actions-core's rules (``audience-membership.ts``).

``engage``: an Engage audience or journey step event (``context.personas.computation_class``
and ``computation_key``) whose ``traits[key]`` (identify) or ``properties[key]`` (track) is a
JSON boolean. ``retl``: a Reverse ETL track event ``new``/``updated``/``deleted`` under a sync
mode. ``legacy_journeys``: a journey step identify/track without a value for its key means
"entered". ``None`` means the event says nothing about membership.
"""

from __future__ import annotations

from typing import Any

_ADDS = {"add": {"new"}, "update": {"updated"}, "upsert": {"new", "updated"}, "mirror": {"new", "updated"}}
_REMOVES = {"delete": {"deleted"}, "mirror": {"deleted"}}


def personas_of(event: dict[str, Any]) -> tuple[str, str]:
    context = event.get("context")
    personas = context.get("personas") if isinstance(context, dict) else None
    if not isinstance(personas, dict):
        return "", ""
    return str(personas.get("computation_class") or ""), str(personas.get("computation_key") or "")


def _value_at_key(event: dict[str, Any], key: str) -> Any:
    kind = event.get("type")
    holder = event.get("traits") if kind == "identify" else event.get("properties") if kind == "track" else None
    return holder.get(key) if isinstance(holder, dict) else None


def engage_membership(event: dict[str, Any]) -> bool | None:
    computation_class, key = personas_of(event)
    if computation_class not in ("audience", "journey_step") or not key:
        return None
    value = _value_at_key(event, key)
    return value if isinstance(value, bool) else None


def retl_membership(event: dict[str, Any], sync_mode: str | None) -> bool | None:
    if not sync_mode or event.get("type") != "track":
        return None
    name = event.get("event")
    if name in _ADDS.get(sync_mode, set()):
        return True
    if name in _REMOVES.get(sync_mode, set()):
        return False
    return None


def legacy_journeys_membership(event: dict[str, Any]) -> bool | None:
    computation_class, key = personas_of(event)
    if computation_class != "journey_step" or not key:
        return None
    kind = event.get("type")
    holder = event.get("traits") if kind == "identify" else event.get("properties") if kind == "track" else None
    present = isinstance(holder, dict) and key in holder
    return True if not present else None


def audience_membership(event: dict[str, Any], sync_mode: str | None = None) -> bool | None:
    """``resolveAudienceMembership``: the Engage rule first, then Reverse ETL."""
    engage = engage_membership(event)
    return engage if engage is not None else retl_membership(event, sync_mode)
