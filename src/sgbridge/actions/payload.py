"""From a Segment event to an action's payload, as actions-core builds it.

The mapping (with the action's default field mappings under it unless ``use_defaults`` is off:
Segment's ``useDefaultMappings``) runs through mapping-kit, then the payload is cleaned,
coerced and checked against the action's schema (``schema.prepare_payload``).
"""

from __future__ import annotations

from typing import Any

from sgbridge.actions.catalog import ActionSpec
from sgbridge.actions.schema import prepare_payload
from sgbridge.mappings import UNDEFINED, apply_mapping
from sgbridge.mappings.compiled import CompiledMapping


def effective_mapping(action: ActionSpec, mapping: dict[str, Any], use_defaults: bool = True) -> dict[str, Any]:
    """The mapping an action runs with: a shallow merge over the defaults, as Segment does."""
    return {**action.default_mapping, **mapping} if use_defaults else dict(mapping)


def build_payload(action: ActionSpec, mapping: dict[str, Any] | CompiledMapping,
                  event: dict[str, Any]) -> dict[str, Any]:
    """The validated payload; ``PayloadInvalid`` (Segment's message) or ``MappingError`` otherwise.

    A ``CompiledMapping`` (subscriptions are checked and compiled at start-up) skips the
    per-event validation and directive dispatch of ``apply_mapping``.
    """
    mapped = mapping(event) if isinstance(mapping, CompiledMapping) else apply_mapping(mapping, event)
    return prepare_payload({} if mapped is UNDEFINED else mapped, action.schema)
