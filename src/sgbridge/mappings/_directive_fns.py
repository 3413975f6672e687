"""The directive functions of mapping-kit's index.ts, one per directive (registered in directives.py)."""

from __future__ import annotations

from typing import Any

from . import _ops
from . import directives as _m
from ._js import (
    UNDEFINED,
    is_number,
    json_parse,
    json_stringify,
    loose_not_equal_empty_string,
    real_type_of,
    to_string,
    truthy,
)
from .errors import MappingError
from .paths import get


def _is_object(v: Any) -> bool:
    return real_type_of(v) == "object"


def _fail(message: str) -> MappingError:
    return MappingError(message)


def if_(opts: Any, payload: Any) -> Any:
    if not _is_object(opts):
        raise _fail('@if requires an object with an "exists" key')
    exists, blank = opts.get("exists", UNDEFINED), opts.get("blank", UNDEFINED)
    condition = False
    if not truthy(exists) and not truthy(blank):
        raise _fail('@if requires an "exists" key or a "blank" key')
    if exists is not UNDEFINED:
        value = _m.resolve(exists, payload)
        condition = value is not UNDEFINED and value is not None
    elif blank is not UNDEFINED:
        value = _m.resolve(blank, payload)
        condition = value is not UNDEFINED and value is not None and loose_not_equal_empty_string(value)
    then, else_ = opts.get("then", UNDEFINED), opts.get("else", UNDEFINED)
    if condition and then is not UNDEFINED:
        return _m.resolve(then, payload)
    if not condition and truthy(else_):
        return _m.resolve(else_, payload)
    return UNDEFINED


def case(opts: Any, payload: Any) -> Any:
    if not _is_object(opts):
        raise _fail('@case requires an object with a "operator" key')
    operator = opts.get("operator", UNDEFINED)
    if not truthy(operator):
        raise _fail('@case requires a "operator" key')
    if not truthy(opts.get("value", UNDEFINED)):
        return UNDEFINED
    value = _m.resolve(opts["value"], payload)
    if isinstance(value, str):
        if operator == "lower":
            return value.lower()
        if operator == "upper":
            return value.upper()
        raise _fail('operator key should have a value of "lower" or "upper"')
    return value


def replace(opts: Any, payload: Any) -> Any:
    if not _is_object(opts):
        raise _fail('@replace requires an object with a "pattern" key')
    if not truthy(opts.get("pattern", UNDEFINED)):
        raise _fail('@replace requires a "pattern" key')
    # mapping-kit fills defaults with `== null`, so an explicit null is replaced too.
    replacement = "" if opts.get("replacement") is None else opts["replacement"]
    pattern2 = opts.get("pattern2", UNDEFINED)
    replacement2 = "" if truthy(pattern2) and opts.get("replacement2") is None else opts.get("replacement2", UNDEFINED)
    ignorecase = False if opts.get("ignorecase") is None else opts["ignorecase"]
    is_global = True if opts.get("global") is None else opts["global"]
    if not truthy(opts.get("value", UNDEFINED)):
        return UNDEFINED
    value = _m.resolve(opts["value"], payload)
    if isinstance(value, bool) or is_number(value):
        value = to_string(value)
    pattern = opts["pattern"]
    if not (isinstance(value, str) and isinstance(pattern, str) and isinstance(replacement, str)
            and isinstance(ignorecase, bool) and isinstance(is_global, bool)):
        return ""
    new_value = _ops.perform_replace(value, pattern, replacement, is_global, ignorecase)
    if truthy(pattern2) and isinstance(pattern2, str) and isinstance(replacement2, str):
        new_value = _ops.perform_replace(new_value, pattern2, replacement2, is_global, ignorecase)
    return new_value


def array_path(data: Any, payload: Any) -> Any:
    if not isinstance(data, list):
        raise _fail(f"@arrayPath expected array, got {real_type_of(data)}")
    path = data[0] if data else UNDEFINED
    item_shape = data[1] if len(data) > 1 else UNDEFINED
    root = get(payload, path.replace("$.", "", 1)) if isinstance(path, str) else _m.resolve(path, payload)
    if real_type_of(root) in ("object", "array") and isinstance(item_shape, dict) and len(item_shape) > 0:
        items = root if isinstance(root, list) else [root]  # arrify
        return [_m.resolve(item_shape, item) for item in items]
    return root


def flatten(opts: Any, payload: Any) -> Any:
    if not _is_object(opts):
        raise _fail('@flatten requires an object with a "separator" key')
    if not truthy(opts.get("separator", UNDEFINED)):
        raise _fail('@flatten requires a "separator" key')
    separator = _m.resolve(opts["separator"], payload)
    if not isinstance(separator, str):
        raise _fail("@flatten requires a string separator")
    value = _m.resolve(opts.get("value", UNDEFINED), payload)
    return _ops.flatten_object(value, "", separator, truthy(opts.get("omitArrays", UNDEFINED)))


def json(opts: Any, payload: Any) -> Any:
    if not _is_object(opts):
        raise _fail('@json requires an object with a "value" key')
    if not truthy(opts.get("mode", UNDEFINED)):
        raise _fail('@json requires a "mode" key')
    if not truthy(opts.get("value", UNDEFINED)):
        raise _fail('@json requires a "value" key')
    value = _m.resolve(opts["value"], payload)
    if opts["mode"] == "encode":
        return json_stringify(value)
    if opts["mode"] == "decode":
        if isinstance(value, str):
            try:
                return json_parse(value)
            except ValueError:
                return value
        return value
    return UNDEFINED


def merge(opts: Any, payload: Any) -> Any:
    if not _is_object(opts):
        raise _fail('@merge requires an object with an "objects" key and a "direction" key')
    if not truthy(opts.get("direction", UNDEFINED)):
        raise _fail('@merge requires a "direction" key')
    direction = _m.resolve(opts["direction"], payload)
    objects = opts.get("objects", UNDEFINED)
    if not truthy(objects):
        raise _fail('@merge requires a "objects" key')
    if not isinstance(objects, list):
        raise _fail(f"@merge: expected opts.array, got {'object' if objects is None else _typeof(objects)}")
    resolved = [_m.resolve(v, payload) for v in objects]
    if direction == "left":
        resolved.reverse()
    return _ops.object_assign(resolved)


def _typeof(v: Any) -> str:
    t = real_type_of(v)
    return {"array": "object", "null": "object", "function": "function"}.get(t, t)


def transform(opts: Any, payload: Any) -> Any:
    if not _is_object(opts):
        raise _fail('@transform requires an object with an "apply" key and a "mapping" key')
    if not truthy(opts.get("mapping", UNDEFINED)):
        raise _fail('@transform requires a "mapping" key')
    if not truthy(opts.get("apply", UNDEFINED)):
        raise _fail('@transform requires a "apply" key')
    if not _is_object(opts["apply"]):
        raise _fail('@transform "apply" key should be an object')
    new_payload = _m.transform(opts["apply"], payload)
    return _m.resolve(opts["mapping"], new_payload)


def exclude_when_null(value: Any, payload: Any) -> Any:
    resolved = _m.resolve(value, payload)
    if resolved is None:
        return UNDEFINED
    return _ops.clean_nulls(resolved)


def liquid(value: Any, payload: Any) -> Any:
    from .liquid import evaluate_liquid

    return evaluate_liquid(value, payload)
