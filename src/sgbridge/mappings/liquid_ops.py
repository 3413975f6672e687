"""liquidjs's operators: `==` with its drops (nil, empty, blank), relational, contains, and/or."""

from __future__ import annotations

import math
import re
from typing import Any, Final

from ._js import JS_WHITESPACE, is_number, to_number, to_string
from .liquid_eval import BlankDrop, Drop, EmptyDrop, NilDrop, is_falsy, is_nil, to_value
from .liquid_tokens import Unsupported

_ALL_BLANK: Final = re.compile(f"[{re.escape(JS_WHITESPACE)}]*")


def _strict_equal(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return a is b
    return a is b if (isinstance(a, bool) or isinstance(b, bool) or a is None or b is None) else a == b


def _drop_equals(drop: Drop, value: Any) -> bool:
    if isinstance(drop, NilDrop):
        return is_nil(to_value(value))
    if isinstance(drop, BlankDrop):
        if value is False or is_nil(to_value(value)):
            return True
        if isinstance(value, str):
            return _ALL_BLANK.fullmatch(value) is not None
    if isinstance(value, EmptyDrop):
        return False
    value = to_value(value)
    if isinstance(value, str | list):
        return len(value) == 0
    if isinstance(value, dict):
        return len(value) == 0
    return False


def equals(lhs: Any, rhs: Any) -> bool:
    if isinstance(lhs, Drop):
        return _drop_equals(lhs, rhs)
    if isinstance(rhs, Drop):
        return _drop_equals(rhs, lhs)
    if isinstance(lhs, list):
        return isinstance(rhs, list) and len(lhs) == len(rhs) and all(
            equals(a, b) for a, b in zip(lhs, rhs, strict=True))
    return _strict_equal(lhs, rhs)


def _to_primitive(v: Any) -> Any:
    return to_string(v) if isinstance(v, list | dict) else v


def compare(a: Any, b: Any) -> int | None:
    """JavaScript's abstract relational comparison; None when it is undefined (a NaN was involved)."""
    a, b = _to_primitive(a), _to_primitive(b)
    if isinstance(a, str) and isinstance(b, str):
        ka, kb = a.encode("utf-16-be", "surrogatepass"), b.encode("utf-16-be", "surrogatepass")
        return (ka > kb) - (ka < kb)
    x, y = to_number(a), to_number(b)
    if math.isnan(x) or math.isnan(y):
        return None
    return (x > y) - (x < y)


def _relational(op: str, lhs: Any, rhs: Any) -> bool:
    if isinstance(lhs, Drop) or isinstance(rhs, Drop):
        return False  # the drops answer false to gt/lt/geq/leq
    c = compare(to_value(lhs), to_value(rhs))
    if c is None:
        return False
    return {">": c > 0, "<": c < 0, ">=": c >= 0, "<=": c <= 0}[op]


def _contains(lhs: Any, rhs: Any) -> bool:
    lhs = to_value(lhs)
    if isinstance(lhs, list):
        return any(equals(x, rhs) for x in lhs)
    if isinstance(lhs, str):
        return to_string(to_value(rhs)) in lhs
    return False


def apply_operator(op: str, lhs: Any, rhs: Any) -> Any:
    if op == "==":
        return equals(lhs, rhs)
    if op == "!=":
        return not equals(lhs, rhs)
    if op in (">", "<", ">=", "<="):
        return _relational(op, lhs, rhs)
    if op == "contains":
        return _contains(lhs, rhs)
    if op == "and":
        return not is_falsy(lhs) and not is_falsy(rhs)
    if op == "or":
        return not is_falsy(lhs) or not is_falsy(rhs)
    raise Unsupported(f"operator {op!r}")
