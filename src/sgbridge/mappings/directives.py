"""Port of Segment's mapping-kit `transform` (actions-core src/mapping-kit/index.ts).

`apply_mapping(mapping, payload)` resolves a mapping copied from Segment's UI against an event,
with every directive, quirk and error message of the original (see docs/mappings-language.md).
Values travel as JSON data plus `UNDEFINED` (JavaScript's undefined) and `JSFunction` (an
inherited built-in such as `x.constructor`), because mapping-kit's results depend on both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

# _directive_fns calls back into resolve/transform through this module, at call time.
from . import _directive_fns as fns
from . import _ops
from ._directive_fns import _fail, _is_object
from ._js import (
    UNDEFINED,
    own_keys,
    real_type_of,
    to_json_data,
)
from .paths import get
from .placeholders import render
from .validate import validate_mapping

ROOT_MAPPING_FIELD_KEY: Final = "__segment_internal_directive"

Directive = Callable[[Any, Any], Any]


def _string_directive(name: str, fn: Callable[[str, Any], Any]) -> Directive:
    def run(value: Any, payload: Any) -> Any:
        s = resolve(value, payload)
        if not isinstance(s, str):
            raise _fail(f"{name}: expected string, got {real_type_of(s)}")
        return fn(s, payload)

    return run


DIRECTIVES: Final[dict[str, Directive]] = {
    "@if": fns.if_,
    "@case": fns.case,
    "@replace": fns.replace,
    "@arrayPath": fns.array_path,
    "@path": _string_directive("@path", lambda path, payload: get(payload, path.replace("$.", "", 1))),
    "@template": _string_directive("@template", lambda template, payload: render(template, payload)),
    "@literal": lambda value, payload: resolve(value, payload),
    "@flatten": fns.flatten,
    "@json": fns.json,
    "@merge": fns.merge,
    "@transform": fns.transform,
    "@excludeWhenNull": fns.exclude_when_null,
    "@liquid": fns.liquid,
}


def is_directive(obj: Any) -> bool:
    if not _is_object(obj) or not any(k.startswith("@") for k in obj):
        return False
    return all(k.startswith("@") or k == "_metadata" for k in obj)


def resolve(mapping: Any, payload: Any) -> Any:
    """mapping-kit `resolve`: plain values as they are, directives run, objects and arrays walked."""
    if isinstance(mapping, list):
        return [resolve(v, payload) for v in mapping]
    if not _is_object(mapping):
        return mapping
    if is_directive(mapping):
        name = next(k for k in mapping if k.startswith("@"))
        fn = DIRECTIVES.get(name)
        if fn is None:
            raise _fail(f"{name} is not a valid directive, got undefined")
        return fn(mapping[name], payload)
    return {k: resolve(mapping[k], payload) for k in own_keys(mapping)}


def _mapping_to_process(mapping: Any) -> Any:
    if mapping is None or mapping is UNDEFINED:  # `Object.keys(mapping)` throws on these
        raise _fail("Cannot convert undefined or null to object")
    to_process: Any = _ops.spread(mapping)
    if ROOT_MAPPING_FIELD_KEY in to_process:
        customer = {k: v for k, v in to_process.items() if k != ROOT_MAPPING_FIELD_KEY}
        to_process = to_process[ROOT_MAPPING_FIELD_KEY]
        if to_process is None or to_process is UNDEFINED:
            raise _fail("Cannot convert undefined or null to object")
        keys = own_keys(to_process)
        if len(keys) > 1:
            raise _fail("The root mapping must only have a single directive object")
        root = _ops.spread(to_process).get(keys[0], UNDEFINED) if keys else UNDEFINED
        if root is UNDEFINED or root is None or not isinstance(root, dict | list):
            raise _fail("The root directive must be an object")
        if isinstance(root, dict):
            # mapping-kit assigns `rootDirective.mapping = customerMappings` in place.
            root = {**root, "mapping": customer}
            if isinstance(to_process, dict):
                to_process = {**to_process, keys[0]: root}
            elif isinstance(to_process, list):
                to_process = [root, *to_process[1:]]
    return to_process


def transform(mapping: Any, data: Any = UNDEFINED, *, validated: bool = False) -> Any:
    """mapping-kit `transform`, returning JavaScript-level values (may hold UNDEFINED in arrays).

    mapping-kit validates the mapping on every call; ``validated=True`` skips that for a mapping
    already checked (at start-up), which is most of the cost of a small mapping.
    """
    if data is UNDEFINED:
        data = {}
    if real_type_of(data) != "object":
        raise _fail(f"data must be an object, got {real_type_of(data)}")
    to_process = _mapping_to_process(mapping)
    if not validated:
        validate_mapping(to_process)
    return _ops.remove_undefined(resolve(to_process, data))


def apply_mapping(mapping: Any, payload: dict[str, Any], *, validated: bool = False) -> Any:
    """Run a Segment mapping on a payload; the result as the JSON Segment would send (UNDEFINED if none)."""
    return to_json_data(transform(mapping, payload, validated=validated))
