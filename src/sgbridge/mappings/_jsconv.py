"""JavaScript conversions on JSON values: String(x), Number(x), `x != ''`, JSON.stringify / JSON.parse."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any, Final

from ._js import UNDEFINED, JSFunction, _Undefined, is_number, js_keys, js_trim, repair_surrogates


def number_to_string(x: float) -> str:
    """Number.prototype.toString() for a finite or non-finite double (ECMA-262 Number::toString)."""
    if isinstance(x, int) and abs(x) < 2**53:
        return str(x) if abs(x) < 10**21 else number_to_string(float(x))
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + number_to_string(-x)
    # repr() gives the shortest round-tripping digits, as V8 does; only the layout differs.
    _sign, digits_t, exp = Decimal(repr(x)).normalize().as_tuple()
    digits = "".join(map(str, digits_t))
    k = len(digits)
    n = int(exp) + k
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    es = f"+{e}" if e >= 0 else str(e)
    return (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + es


def to_string(v: Any) -> str:
    """String(v)."""
    if v is UNDEFINED:
        return "undefined"
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if is_number(v):
        return number_to_string(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return ",".join("" if e is None or e is UNDEFINED else to_string(e) for e in v)
    if isinstance(v, JSFunction):
        return repr(v)
    return "[object Object]"


_DEC_RE: Final = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX_RE: Final = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def to_number(v: Any) -> float:
    """Number(v) (ToNumber) for JSON values."""
    if v is UNDEFINED:
        return math.nan
    if v is None or v is False:
        return 0.0
    if v is True:
        return 1.0
    if is_number(v):
        return float(v)
    if isinstance(v, str):
        s = js_trim(v)
        if s == "":
            return 0.0
        if _DEC_RE.fullmatch(s):
            return float(s.replace("Infinity", "inf"))
        m = _RADIX_RE.fullmatch(s)
        if m:
            return float(int(m.group(1)[1:], {"x": 16, "o": 8, "b": 2}[m.group(1)[0].lower()]))
        return math.nan
    if isinstance(v, list):
        return to_number(to_string(v))
    return math.nan


def loose_not_equal_empty_string(v: Any) -> bool:
    """`v != ''` with JavaScript's abstract equality (v is neither undefined nor null here)."""
    if isinstance(v, str):
        return v != ""
    if isinstance(v, bool) or is_number(v):
        return to_number(v) != 0
    # Objects, arrays and functions are compared through their string form.
    return to_string(v) != ""


def _quote(s: str) -> str:
    s = repair_surrogates(s)
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif o < 0x20 or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_stringify(v: Any) -> str | _Undefined:
    """JSON.stringify(v) without indentation; `undefined` where JavaScript returns undefined."""
    if v is UNDEFINED or isinstance(v, JSFunction):
        return UNDEFINED
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if is_number(v):
        return "null" if isinstance(v, float) and not math.isfinite(v) else number_to_string(v)
    if isinstance(v, str):
        return _quote(v)
    if isinstance(v, list):
        parts = [json_stringify(e) for e in v]
        return "[" + ",".join("null" if p is UNDEFINED else str(p) for p in parts) + "]"
    items = []
    for k in js_keys(v):
        s = json_stringify(v[k])
        if s is not UNDEFINED:
            items.append(_quote(k) + ":" + str(s))
    return "{" + ",".join(items) + "}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Unexpected token {name[0]}")


def json_parse(s: str) -> Any:
    """JSON.parse(s): like json.loads but without Python's NaN/Infinity extensions."""
    return json.loads(s, parse_constant=_reject_constant)


def to_json_data(v: Any) -> Any:
    """What a value looks like after a JSON round trip (undefined and functions dropped, or null in arrays)."""
    if v is UNDEFINED or isinstance(v, JSFunction):
        return UNDEFINED
    if isinstance(v, list):
        return [None if (d := to_json_data(e)) is UNDEFINED else d for e in v]
    if isinstance(v, dict):
        return {k: d for k in js_keys(v) if (d := to_json_data(v[k])) is not UNDEFINED}
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
