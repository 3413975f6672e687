"""destination-subscriptions `validate`: evaluates a parseFql AST against an event."""

from __future__ import annotations

import math
from typing import Any, Final

from ._js import UNDEFINED, is_number, to_number, to_string
from .errors import SubscriptionError
from .paths import fql_get

_NAMED: Final = {"event-property": "properties", "event-trait": "traits", "event-context": "context"}


def _check(actual: Any, operator: str, expected: Any) -> bool:
    """validateValue."""
    num = is_number(actual)
    if operator == "=":
        return isinstance(actual, str) and actual == to_string(expected)
    if operator == "!=":
        return not (isinstance(actual, str) and actual == to_string(expected))
    if operator in ("number_equals", "number_not_equals", "<", "<=", ">", ">="):
        if not num:
            return False
        a, b = float(actual), to_number(expected)
        if math.isnan(a) or math.isnan(b):
            return operator == "number_not_equals"
        return {"number_equals": a == b, "number_not_equals": a != b, "<": a < b, "<=": a <= b, ">": a > b,
                ">=": a >= b}[operator]
    if operator in ("contains", "not_contains", "starts_with", "not_starts_with", "ends_with", "not_ends_with"):
        if not isinstance(actual, str):
            return False
        e = to_string(expected)
        hit = e in actual if "contains" in operator else actual.startswith(e) if "starts" in operator \
            else actual.endswith(e)
        return hit != operator.startswith("not_")
    if operator == "exists":
        return actual is not UNDEFINED and actual is not None
    if operator == "not_exists":
        return actual is UNDEFINED or actual is None
    if operator == "is_true":
        return actual is True
    if operator == "is_false":
        return actual is False
    return False


def _matches(cond: Any, data: dict[str, Any]) -> bool:
    """validateCondition."""
    if cond is None:
        raise SubscriptionError("an empty parenthesis group in the subscription cannot be evaluated")
    kind = cond["type"]
    if kind == "group":
        return group_matches(cond, data)
    fields = {"event-type": "type", "event": "event", "name": "name", "userId": "userId"}
    if kind in fields:
        actual = data.get(fields[kind], UNDEFINED)
    elif kind in _NAMED:
        try:
            actual = fql_get(data.get(_NAMED[kind], UNDEFINED), cond["name"])
        except TypeError as e:
            raise SubscriptionError(f"cannot evaluate path {cond['name']!r}: {e}") from None
    else:
        return False
    return _check(actual, cond["operator"], cond.get("value", UNDEFINED))


def group_matches(cond: dict[str, Any], data: dict[str, Any]) -> bool:
    if cond["operator"] == "and":
        return all(_matches(c, data) for c in cond["children"])
    if cond["operator"] == "or":
        return any(_matches(c, data) for c in cond["children"])
    return False
