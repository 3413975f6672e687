"""The few JavaScript semantics Segment's mapping-kit and FQL code lean on, reproduced for JSON data.

Segment's code is JavaScript and its quirks come from the language: `undefined` versus `null`,
truthiness, `String(x)`, `Number(x)`, property access on strings and arrays (`"abc".length`),
inherited members of `Object.prototype` (`obj.constructor` is a function, so it "exists"), key
order of objects and `JSON.stringify`. Each helper here mirrors one of those so that the ports in
this package can be written line by line against Segment's sources.
"""

from __future__ import annotations

import math
from typing import Any, Final


class _Undefined:
    """JavaScript's `undefined`: a value that is not there, distinct from JSON `null` (None)."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = _Undefined()


class JSFunction:
    """A built-in function reached through an inherited member (`x.constructor`, `"s".toString`).

    It only needs to be truthy, to "exist", to print like V8 prints native functions and to vanish
    from JSON output, which is all Segment's code can observe of it.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"function {self.name}() {{ [native code] }}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSFunction) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


_OBJECT_PROTO: Final = frozenset({
    "__defineGetter__", "__defineSetter__", "hasOwnProperty", "__lookupGetter__", "__lookupSetter__",
    "isPrototypeOf", "propertyIsEnumerable", "toString", "valueOf", "toLocaleString",
})
_ARRAY_PROTO: Final = frozenset({
    "at", "concat", "copyWithin", "fill", "find", "findIndex", "findLast", "findLastIndex", "lastIndexOf",
    "pop", "push", "reverse", "shift", "unshift", "slice", "sort", "splice", "includes", "indexOf", "join",
    "keys", "entries", "values", "forEach", "filter", "flat", "flatMap", "map", "every", "some", "reduce",
    "reduceRight", "toReversed", "toSorted", "toSpliced", "with",
})
_STRING_PROTO: Final = frozenset({
    "anchor", "at", "big", "blink", "bold", "charAt", "charCodeAt", "codePointAt", "concat", "endsWith",
    "fontcolor", "fontsize", "fixed", "includes", "indexOf", "isWellFormed", "italics", "lastIndexOf", "link",
    "localeCompare", "match", "matchAll", "normalize", "padEnd", "padStart", "repeat", "replace", "replaceAll",
    "search", "slice", "small", "split", "strike", "sub", "substr", "substring", "sup", "startsWith",
    "toString", "toWellFormed", "trim", "trimStart", "trimLeft", "trimEnd", "trimRight", "toLocaleLowerCase",
    "toLocaleUpperCase", "toLowerCase", "toUpperCase", "valueOf",
})
_NUMBER_PROTO: Final = frozenset({"toExponential", "toFixed", "toPrecision", "toString", "valueOf"})
_BOOLEAN_PROTO: Final = frozenset({"toString", "valueOf"})
_CONSTRUCTORS: Final = {dict: "Object", list: "Array", str: "String", int: "Number", float: "Number", bool: "Boolean"}
_FUNCTION_PROTO: Final = frozenset({"apply", "bind", "call", "toString", "constructor"})
# Function.prototype.length of the built-ins reachable from JSON values' prototypes, where known.
_ARITY: Final = {"Object": 1, "Array": 1, "String": 1, "Number": 1, "Boolean": 1, "toString": 0, "valueOf": 0,
                 "toLocaleString": 0, "hasOwnProperty": 1, "isPrototypeOf": 1, "propertyIsEnumerable": 1,
                 "__defineGetter__": 2, "__defineSetter__": 2, "__lookupGetter__": 1, "__lookupSetter__": 1}

# JavaScript's WhiteSpace + LineTerminator, the set String.prototype.trim() removes.
JS_WHITESPACE: Final = "\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
    "\u2028\u2029\u202f\u205f\u3000\ufeff"


def js_trim(s: str) -> str:
    return s.strip(JS_WHITESPACE)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def real_type_of(v: Any) -> str:
    """`Object.prototype.toString.call(v)` lower-cased, as actions-core's realTypeOf."""
    if v is UNDEFINED:
        return "undefined"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if is_number(v):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, JSFunction):
        return "function"
    return "object"


def truthy(v: Any) -> bool:
    if v is UNDEFINED or v is None or v is False:
        return False
    if is_number(v):
        return not (v == 0 or (isinstance(v, float) and math.isnan(v)))
    if isinstance(v, str):
        return v != ""
    return True


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def repair_surrogates(s: str) -> str:
    """Join adjacent surrogate halves into one character, as JavaScript strings behave once concatenated."""
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        return s
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def utf16_units(s: str) -> list[str]:
    """The string's UTF-16 code units, each as a one-unit str (lone surrogates for astral characters)."""
    raw = s.encode("utf-16-le", "surrogatepass")
    return [raw[i:i + 2].decode("utf-16-le", "surrogatepass") for i in range(0, len(raw), 2)]


def _array_index(key: str) -> int | None:
    if key.isascii() and key.isdigit() and (key == "0" or not key.startswith("0")):
        n = int(key)
        if n < 2**32 - 1:
            return n
    return None


def js_keys(obj: dict[str, Any]) -> list[str]:
    """Object.keys order: array-index-like keys ascending first, then the others in insertion order."""
    keys = list(obj)
    indexed = [k for k in keys if _array_index(k) is not None]
    if not indexed:
        return keys
    indexed.sort(key=lambda k: int(k))
    return indexed + [k for k in keys if _array_index(k) is None]


def own_keys(v: Any) -> list[str]:
    """Object.keys(v) for any value (strings and arrays have index keys; other primitives none)."""
    if isinstance(v, dict):
        return js_keys(v)
    if isinstance(v, list):
        return [str(i) for i in range(len(v))]
    if isinstance(v, str):
        return [str(i) for i in range(utf16_len(v))]
    return []


def get_prop(obj: Any, key: str) -> Any:
    """`obj[key]` for a JSON value, including the inherited members JavaScript would find."""
    if obj is UNDEFINED or obj is None:
        raise TypeError(f"Cannot read properties of {real_type_of(obj)} (reading '{key}')")
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        if key == "__proto__":
            return {}
        if key in _OBJECT_PROTO:
            return JSFunction(key)
    elif isinstance(obj, list | str):
        idx = _array_index(key)
        if isinstance(obj, list):
            if idx is not None:
                return obj[idx] if idx < len(obj) else UNDEFINED
            if key == "length":
                return len(obj)
            if key in _ARRAY_PROTO or key in _OBJECT_PROTO:
                return JSFunction(key)
        else:
            units = utf16_units(obj)
            if idx is not None:
                return units[idx] if idx < len(units) else UNDEFINED
            if key == "length":
                return len(units)
            if key in _STRING_PROTO or key in _OBJECT_PROTO:
                return JSFunction(key)
    elif isinstance(obj, bool):
        if key in _BOOLEAN_PROTO or key in _OBJECT_PROTO:
            return JSFunction(key)
    elif is_number(obj) and (key in _NUMBER_PROTO or key in _OBJECT_PROTO):
        return JSFunction(key)
    elif isinstance(obj, JSFunction):
        if key == "name":
            return obj.name
        if key == "length":
            return _ARITY.get(obj.name, UNDEFINED)
        if key in _FUNCTION_PROTO or key in _OBJECT_PROTO:
            return JSFunction("Function" if key == "constructor" else key)
        return UNDEFINED
    if key == "constructor":
        ctor = _CONSTRUCTORS.get(type(obj))
        if ctor is not None:
            return JSFunction(ctor)
    return UNDEFINED


# The conversions live in _jsconv (kept apart for size); most callers import them from here.
from ._jsconv import json_parse as json_parse  # noqa: E402
from ._jsconv import json_stringify as json_stringify  # noqa: E402
from ._jsconv import loose_not_equal_empty_string as loose_not_equal_empty_string  # noqa: E402
from ._jsconv import number_to_string as number_to_string  # noqa: E402
from ._jsconv import to_json_data as to_json_data  # noqa: E402
from ._jsconv import to_number as to_number  # noqa: E402
from ._jsconv import to_string as to_string  # noqa: E402

