"""Segment's mapping language (mapping-kit directives) and trigger language (FQL subscriptions)."""

from ._js import UNDEFINED
from .directives import apply_mapping, transform
from .errors import MappingError, MappingIssue, SubscriptionError
from .validate import validate_mapping

__all__ = ["UNDEFINED", "MappingError", "MappingIssue", "SubscriptionError", "apply_mapping", "transform",
           "validate_mapping"]
