"""Mappings compiled once into closures, for the delivery path.

``transform`` walks the mapping on every event: it tells directives from objects, splits every
``@path`` and checks every ``@if`` again, which costs more than the lookups themselves. A
subscription's mapping never changes, so that structural work is done once here. ``@path`` and
``@if`` (nearly every default mapping is made of them) get dedicated closures with the same
semantics as ``_directive_fns``; every other directive runs through the generic function, so
behaviour is the same by construction. ``tests/mappings/test_vectors.py`` runs every vector
through both paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _ops
from ._js import UNDEFINED, own_keys, real_type_of, truthy
from ._jsconv import to_json_data
from .directives import DIRECTIVES, _mapping_to_process, is_directive, resolve
from .errors import MappingError
from .paths import _QUOTES_RE, _SPLIT_RE, _step

Compiled = Callable[[Any], Any]


def _walk(keys: list[str], payload: Any) -> Any:
    """``reduce(_step, keys, payload)`` with the common case (an own key of an object) inlined."""
    value = payload
    for key in keys:
        value = value[key] if type(value) is dict and key in value else _step(value, key)
    return value


def _constant(value: Any) -> Compiled:
    return lambda payload: value


def _path(argument: Any) -> Compiled | None:
    if not isinstance(argument, str):
        return None  # a nested directive as the path: the generic function handles it
    path = argument.replace("$.", "", 1)
    if path in ("", "."):
        return lambda payload: payload
    keys = [_QUOTES_RE.sub("", s) for s in _SPLIT_RE.split(path) if s]
    return lambda payload: _walk(keys, payload)


def _if(options: Any) -> Compiled | None:
    if real_type_of(options) != "object":
        return None
    exists, blank = options.get("exists", UNDEFINED), options.get("blank", UNDEFINED)
    if exists is UNDEFINED or not truthy(exists) or blank is not UNDEFINED:
        return None  # "blank" and the error cases stay with the generic function
    condition = compile_mapping(exists)
    then = options.get("then", UNDEFINED)
    otherwise = options.get("else", UNDEFINED)
    then_fn = compile_mapping(then) if then is not UNDEFINED else None
    else_fn = compile_mapping(otherwise) if truthy(otherwise) else None

    def run(payload: Any) -> Any:
        value = condition(payload)
        if value is not UNDEFINED and value is not None:
            return then_fn(payload) if then_fn is not None else UNDEFINED
        return else_fn(payload) if else_fn is not None else UNDEFINED

    return run


_FAST = {"@path": _path, "@if": _if}


def compile_mapping(mapping: Any) -> Compiled:
    """A function of the payload equal to ``resolve(mapping, payload)``."""
    if isinstance(mapping, list):
        parts = [compile_mapping(v) for v in mapping]
        return lambda payload: [part(payload) for part in parts]
    if real_type_of(mapping) != "object":
        return _constant(mapping)
    if is_directive(mapping):
        name = next(k for k in mapping if k.startswith("@"))
        argument = mapping[name]
        fast = _FAST[name](argument) if name in _FAST else None
        if fast is not None:
            return fast
        function = DIRECTIVES.get(name)
        if function is None:
            return lambda payload: resolve(mapping, payload)  # raises mapping-kit's error
        return lambda payload: function(argument, payload)
    fields = [(key, compile_mapping(mapping[key])) for key in own_keys(mapping)]
    return lambda payload: {key: part(payload) for key, part in fields}


class CompiledMapping:
    """``apply_mapping`` for one mapping, checked and compiled once."""

    def __init__(self, mapping: Any) -> None:
        self._run = compile_mapping(_mapping_to_process(mapping))

    def __call__(self, payload: dict[str, Any]) -> Any:
        if real_type_of(payload) != "object":
            raise MappingError(f"data must be an object, got {real_type_of(payload)}")
        return to_json_data(_ops.remove_undefined(self._run(payload)))
