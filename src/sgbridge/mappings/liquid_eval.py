"""liquidjs values and expressions: drops (nil, empty, blank), lookups, operators, filter calls."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

from ._js import UNDEFINED, is_number, repair_surrogates, to_number, to_string, utf16_len, utf16_units
from .liquid_tokens import Const, FilterCall, FilteredValue, Op, PropAccess, Range, Unsupported


class Drop:
    """liquidjs's literal drops; `value_of` is what they turn into as plain values."""

    value_of: Any = None


class NilDrop(Drop):
    value_of = None


class EmptyDrop(Drop):
    value_of = ""


class BlankDrop(EmptyDrop):
    pass


NIL: Final = NilDrop()
EMPTY: Final = EmptyDrop()
BLANK: Final = BlankDrop()
_LITERALS: Final = {"true": True, "false": False, "nil": NIL, "null": NIL, "empty": EMPTY, "blank": BLANK}


def literal_value(text: str) -> Any:
    return _LITERALS[text]


def to_value(v: Any) -> Any:
    return v.value_of if isinstance(v, Drop) else v


def is_nil(v: Any) -> bool:
    return v is None or v is UNDEFINED


def is_falsy(v: Any) -> bool:
    v = to_value(v)
    return v is False or is_nil(v)


def liquid_stringify(v: Any) -> str:
    """liquidjs stringify: nil is '', arrays are concatenated, the rest is String(v)."""
    v = to_value(v)
    if isinstance(v, str):
        return v
    if is_nil(v):
        return ""
    if isinstance(v, list):
        return repair_surrogates("".join(liquid_stringify(x) for x in v))
    return to_string(v)


def _own(obj: Any, key: Any) -> tuple[bool, Any]:
    """hasOwnProperty(obj, key) and obj[key], for JSON values."""
    k = key if isinstance(key, str) else to_string(key)
    if isinstance(obj, dict):
        return (True, obj[k]) if k in obj else (False, UNDEFINED)
    if isinstance(obj, list | str):
        seq = obj if isinstance(obj, list) else utf16_units(obj)
        if k == "length":
            return True, len(seq)
        if k.isdigit() and k.isascii() and (k == "0" or not k.startswith("0")) and int(k) < len(seq):
            return True, seq[int(k)]
    return False, UNDEFINED


def read_array_element(arr: Any, index: float) -> Any:
    length = len(arr) if isinstance(arr, list) else utf16_len(arr) if isinstance(arr, str) else to_number(
        _own(arr, "length")[1])
    if index < 0:
        index = length + index
    if not math.isfinite(index) or index != int(index):
        return UNDEFINED
    return _own(arr, str(int(index)))[1]


def read_size(obj: Any) -> Any:
    has, value = _own(obj, "size")
    if has:
        return value
    if isinstance(obj, list):
        return len(obj)
    if isinstance(obj, str):
        return utf16_len(obj)
    if isinstance(obj, dict):
        return len(obj)
    return UNDEFINED


def read_property(obj: Any, key: Any) -> Any:
    """Context.readProperty with ownPropertyOnly (liquidjs's default)."""
    key = to_value(key)
    if is_nil(obj):
        return obj
    if isinstance(obj, Drop):
        return UNDEFINED
    if isinstance(obj, list) and is_number(key):
        return read_array_element(obj, key)
    value = _own(obj, key)[1]
    if key == "size":
        return read_size(obj)
    if key in ("first", "last"):
        if isinstance(obj, list):
            return read_array_element(obj, 0 if key == "first" else -1)
        return _own(obj, key)[1]
    return value


@dataclass
class Context:
    env: Any
    scope: dict[str, Any] = field(default_factory=dict)  # what assign and capture write
    break_called: bool = False

    def lookup(self, props: list[Any]) -> Any:
        first = props[0]
        key = first if isinstance(first, str) else to_string(first)
        if key in self.scope:
            obj: Any = self.scope
        elif _own(self.env, key)[0]:
            obj = self.env
        else:
            obj = {}
        for p in props:
            obj = read_property(obj, p)
        return obj


def eval_token(tok: Any, ctx: Context) -> Any:
    if tok is None:
        return UNDEFINED
    if isinstance(tok, Const):
        return tok.content
    if isinstance(tok, PropAccess):
        props = [to_value(eval_token(p, ctx)) for p in tok.props]
        if tok.variable is not None:
            obj = eval_token(tok.variable, ctx)
            for p in props:
                obj = read_property(obj, p)
            return obj
        return ctx.lookup(props)
    if isinstance(tok, Range):
        low, high = to_number(to_value(eval_token(tok.lhs, ctx))), to_number(to_value(eval_token(tok.rhs, ctx)))
        if high - low + 1 > 1e8:
            raise Unsupported("a range this large")
        out, i = [], low
        while i < high + 1:
            out.append(i)
            i += 1
        return out
    if isinstance(tok, FilteredValue):
        return eval_filtered(tok, ctx)
    raise Unsupported(f"token {tok!r}")


def eval_expression(postfix: list[Any], ctx: Context) -> Any:
    operands: list[Any] = []
    for tok in postfix:
        if isinstance(tok, Op):
            r = operands.pop() if operands else UNDEFINED
            if tok.operator == "not":
                operands.append(is_falsy(r))
                continue
            lhs = operands.pop() if operands else UNDEFINED
            from .liquid_ops import apply_operator

            operands.append(apply_operator(tok.operator, lhs, r))
        else:
            operands.append(eval_token(tok, ctx))
    return operands[0] if operands else UNDEFINED


def eval_filtered(value: FilteredValue, ctx: Context) -> Any:
    from .liquid_filters import call_filter

    val = eval_expression(value.postfix, ctx)
    for f in value.filters:
        val = call_filter(f.name, val, _eval_args(f, ctx), ctx)
    return val


def _eval_args(f: FilterCall, ctx: Context) -> list[Any]:
    return [(a[0], eval_token(a[1], ctx)) if isinstance(a, tuple) else eval_token(a, ctx) for a in f.args]
