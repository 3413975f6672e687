"""liquidjs's filters as Segment configures them (some disabled): number, array and misc ones, and dispatch."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any, Final

from ._js import (
    JS_WHITESPACE,
    UNDEFINED,
    is_number,
    json_stringify,
    repair_surrogates,
    to_number,
    to_string,
    truthy,
    utf16_len,
)
from .liquid_eval import (
    Context,
    eval_expression,
    is_falsy,
    is_nil,
    liquid_stringify,
    read_array_element,
    read_property,
    to_value,
)
from .liquid_strings import STRING_FILTERS
from .liquid_tokens import LiquidError, Unsupported

# Segment's liquid-directive.ts registers these as throwing.
DISABLED: Final = frozenset({
    "array_to_sentence_string", "concat", "find", "find_exp", "find_index", "find_index_exp", "group_by",
    "group_by_exp", "has", "has_exp", "map", "newline_to_br", "reject", "reject_exp", "reverse", "sort",
    "sort_natural", "uniq", "where_exp", "type",
})
# liquidjs built-ins this port leaves out: dates depend on the clock and time zone, sample is random.
NOT_PORTED: Final = frozenset({
    "date", "date_to_xmlschema", "date_to_rfc822", "date_to_string", "date_to_long_string", "sample", "where",
    "slugify", "number_of_words",
})
_WS: Final = f"[{re.escape(JS_WHITESPACE)}]+"
_ESCAPE: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"}


def _num(v: Any) -> float:
    """liquidjs toNumber: `+value || 0`."""
    n = to_number(to_value(v))
    return 0.0 if math.isnan(n) or n == 0 else n


def _s(v: Any) -> str:
    return liquid_stringify(v)


def _div(a: float, b: float) -> float:
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1, b)
    return a / b


def _rem(a: float, b: float) -> float:
    """JavaScript's `%` (remainder with the dividend's sign)."""
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    return a if math.isinf(b) else math.fmod(a, b)


def _mod(a: float, b: float = math.nan) -> float:
    return _rem(_rem(a, b) + b, b)


def _js_max(*xs: float) -> float:
    return math.nan if any(math.isnan(x) for x in xs) else max(xs, default=-math.inf)


def _js_min(*xs: float) -> float:
    return math.nan if any(math.isnan(x) for x in xs) else min(xs, default=math.inf)


def _d(v: Any, default: Any) -> Any:
    """A JavaScript default parameter: it also replaces an explicit undefined."""
    return default if v is UNDEFINED else v


def _js_round(x: float) -> float:
    f = math.floor(x)
    return f + 1 if x - f >= 0.5 else f


def _shift(n: float, exponent: float) -> float:
    mantissa, _, power = to_string(n).partition("e")
    return to_number(f"{mantissa}e{to_string(to_number(power or '0') + exponent)}")


def _round(v: Any, arg: Any = 0) -> float:
    x, places = _num(v), _num(_d(arg, 0))
    scaled = _shift(abs(x), places)
    if not scaled <= 2**53 - 1:
        return x
    rounded = _shift(_js_round(scaled), -places)
    return -rounded if x < 0 else rounded


def _to_array(v: Any) -> list[Any]:
    v = to_value(v)
    return [] if is_nil(v) else v if isinstance(v, list) else [v]


def _array_like(v: Any) -> bool:
    """`v && isNumber(v.length)`."""
    if isinstance(v, list):
        return True
    if isinstance(v, str):
        return v != ""
    return isinstance(v, dict) and is_number(v.get("length"))


def _first_last(index: int) -> Callable[[Any], Any]:
    def run(v: Any) -> Any:
        v = to_value(v)
        return read_array_element(v, index) if _array_like(v) else ""
    return run


def _size(v: Any) -> Any:
    """`(v && v.length) || 0`, on the value as it is (a drop has no length)."""
    if isinstance(v, list):
        return len(v)
    if isinstance(v, str):
        return utf16_len(v)
    if isinstance(v, dict) and "length" in v and truthy(v["length"]):
        return v["length"]
    return 0


def _slice(v: Any, begin: Any, length: Any = 1) -> Any:
    v = to_value(v)
    if is_nil(v):
        return []
    seq: list[Any] = v if isinstance(v, list) else list(_s(v))
    b, n = to_number(to_value(begin)), to_number(to_value(_d(length, 1)))
    b = len(seq) + b if b < 0 else b
    if b < 0 or n < 0:
        return [] if isinstance(v, list) else ""
    b, n = (0 if math.isnan(b) else int(b)), (0 if math.isnan(n) else int(n))
    out = seq[b:b + n]
    return out if isinstance(v, list) else "".join(out)


def _json(v: Any, space: Any = 0) -> Any:
    space = _d(space, 0)
    if to_number(to_value(space)) or (isinstance(space, str) and space):
        raise Unsupported("json with indentation")
    return json_stringify(_plain(v))


def _plain(v: Any) -> Any:
    from .liquid_eval import Drop

    if isinstance(v, Drop):
        return {}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _default(v: Any, default: Any = UNDEFINED, *kwargs: Any) -> Any:
    v = to_value(v)
    if isinstance(v, list | str):
        return v if len(v) else default
    if v is False and any(isinstance(k, tuple) and k[0] == "allow_false" and truthy(k[1]) for k in kwargs):
        return False
    return default if is_falsy(v) else v


def _sum(v: Any, prop: Any = UNDEFINED) -> float:
    total = 0.0
    for item in _to_array(v):
        x = item
        if truthy(prop):
            for p in _s(prop).split("."):
                x = read_property(x, p)
        n = to_number(to_value(x))
        total += 0 if math.isnan(n) else n
    return total


NAN: Final = math.nan


def _floor(x: float) -> float:
    return float(math.floor(x)) if math.isfinite(x) else x


def _num_filter(fn: Callable[..., float]) -> Callable[..., float]:
    return lambda *args: fn(*(_num(a) for a in args))


FILTERS: Final[dict[str, Callable[..., Any]]] = {
    **STRING_FILTERS,
    # argumentsToNumber: given arguments become numbers (undefined → 0); missing ones stay undefined (NaN).
    "abs": _num_filter(lambda a=NAN, *_: abs(a)), "at_least": _num_filter(_js_max), "at_most": _num_filter(_js_min),
    "ceil": _num_filter(lambda x=NAN, *_: float(math.ceil(x)) if math.isfinite(x) else x),
    "floor": _num_filter(lambda x=NAN, *_: float(math.floor(x)) if math.isfinite(x) else x),
    "divided_by": _num_filter(lambda a=NAN, b=NAN, integer=0.0, *_: _floor(_div(a, b)) if integer else _div(a, b)),
    "minus": _num_filter(lambda a=NAN, b=NAN, *_: a - b), "plus": _num_filter(lambda a=NAN, b=NAN, *_: a + b),
    "times": _num_filter(lambda a=NAN, b=NAN, *_: a * b), "modulo": _num_filter(lambda a=NAN, b=NAN, *_: _mod(a, b)),
    "round": _round,
    "first": _first_last(0), "last": _first_last(-1), "size": _size, "sum": _sum,
    "compact": lambda v: [x for x in _to_array(v) if not is_nil(to_value(x))],
    "push": lambda v, arg=UNDEFINED: [*_to_array(v), arg],
    "unshift": lambda v, arg=UNDEFINED: [arg, *_to_array(v)],
    "pop": lambda v: _to_array(v)[:-1], "shift": lambda v: _to_array(v)[1:],
    "slice": _slice,
    "default": _default, "raw": lambda v: v, "jsonify": _json, "json": _json, "inspect": _json,
    "to_integer": lambda v: to_number(to_value(v)),
}


def call_filter(name: str, value: Any, args: list[Any], ctx: Context) -> Any:
    del ctx
    if name in DISABLED:
        raise LiquidError(f'@liquid: filter "{name}" is disabled')
    if name in NOT_PORTED:
        raise Unsupported(f'the "{name}" filter')
    fn = FILTERS.get(name)
    if fn is None:
        return value  # liquidjs ignores unknown filters (strictFilters is off)
    positional = [a for a in args if not isinstance(a, tuple)]
    keywords = [a for a in args if isinstance(a, tuple)]
    if keywords and name != "default":
        raise Unsupported(f'keyword arguments to "{name}"')
    result = fn(*_fit(fn, [value, *positional, *keywords]))
    # JavaScript re-pairs surrogate halves that end up side by side (e.g. after `split: ""` then `join`).
    return repair_surrogates(result) if isinstance(result, str) else result


def _fit(fn: Callable[..., Any], args: list[Any]) -> list[Any]:
    """JavaScript ignores surplus arguments; Python functions here take only what they declare."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return args
    return args[:len(params)]


__all__ = ["FILTERS", "call_filter", "eval_expression"]
