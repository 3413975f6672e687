"""Value helpers behind @replace, @flatten, @merge, @excludeWhenNull and the final undefined sweep."""

from __future__ import annotations

from typing import Any

from ._js import UNDEFINED, js_keys, own_keys, real_type_of, utf16_units
from .errors import MappingError
from .validate import MAX_PATTERN_LENGTH, MAX_REPLACEMENT_LENGTH


def _canonicalize(ch: str) -> str:
    """Case folding of a non-unicode JavaScript regex with the i flag (ECMA-262 Canonicalize).

    Only single-character upper-case mappings count, a non-ASCII character never folds onto ASCII
    (so the long s, U+017F, does not match "s"), and astral characters, seen as surrogate halves, never fold.
    """
    if ord(ch) > 0xFFFF:
        return ch
    up = ch.upper()
    if len(up) != 1 or (ord(ch) >= 128 and ord(up) < 128):
        return ch
    return up


def _substitution(replacement: str, value: str, start: int, end: int) -> str:
    """GetSubstitution for a pattern without capture groups (mapping-kit escapes every metacharacter)."""
    out: list[str] = []
    i = 0
    while i < len(replacement):
        ch = replacement[i]
        nxt = replacement[i + 1] if i + 1 < len(replacement) else ""
        if ch == "$" and nxt in ("$", "&", "`", "'"):
            out.append({"$": "$", "&": value[start:end], "`": value[:start], "'": value[end:]}[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def perform_replace(value: str, pattern: str, replacement: str, is_global: bool, ignorecase: bool) -> str:
    """mapping-kit performReplace: `value.replace(new RegExp(escaped(pattern), flags), replacement)`."""
    if len(utf16_units(pattern)) > MAX_PATTERN_LENGTH:
        raise MappingError(f"@replace requires a \"pattern\" less than {MAX_PATTERN_LENGTH} characters")
    if len(utf16_units(replacement)) > MAX_REPLACEMENT_LENGTH:
        raise MappingError(f"@replace requires a \"replacement\" less than {MAX_REPLACEMENT_LENGTH} characters")
    # Every regex metacharacter is escaped, so the RegExp is a plain substring search.
    hay = "".join(map(_canonicalize, value)) if ignorecase else value
    needle = "".join(map(_canonicalize, pattern)) if ignorecase else pattern
    out: list[str] = []
    pos = 0
    while True:
        found = hay.find(needle, pos)
        if found < 0:
            break
        out.append(value[pos:found])
        out.append(_substitution(replacement, value, found, found + len(needle)))
        pos = found + len(needle)
        if not is_global:
            break
    out.append(value[pos:])
    return "".join(out)


def flatten_object(value: Any, prefix: str, separator: str, ignore_arrays: bool) -> dict[str, Any]:
    """mapping-kit flattenObject."""
    if isinstance(value, dict) or (not ignore_arrays and isinstance(value, list)):
        acc: dict[str, Any] = {}
        entries = [(k, value[k]) for k in js_keys(value)] if isinstance(value, dict) else \
            [(str(i), v) for i, v in enumerate(value)]
        for key, item in entries:
            new_key = f"{prefix}{separator}{key}" if prefix else key
            acc.update(flatten_object(item, new_key, separator, ignore_arrays))
        return acc
    return {prefix: value}


def object_assign(sources: list[Any]) -> dict[str, Any]:
    """`Object.assign({}, ...sources)`: own enumerable keys; strings spread into characters."""
    target: dict[str, Any] = {}
    for src in sources:
        if isinstance(src, dict):
            for k in js_keys(src):
                target[k] = src[k]
        elif isinstance(src, list):
            for i, item in enumerate(src):
                target[str(i)] = item
        elif isinstance(src, str):
            for i, unit in enumerate(utf16_units(src)):
                target[str(i)] = unit
    return target


def spread(value: Any) -> dict[str, Any]:
    """`{...value}` as getMappingToProcess does it to the mapping."""
    if value is UNDEFINED or value is None:
        return {}
    if isinstance(value, dict):
        return {k: value[k] for k in js_keys(value)}
    return object_assign([value])


def clean_nulls(value: Any) -> Any:
    """@excludeWhenNull's cleanNulls: nulls inside (nested) objects become undefined; arrays untouched."""
    if real_type_of(value) != "object":
        return value
    cleaned = dict(value)
    for key in js_keys(value):
        val = value[key]
        if val is None:
            cleaned[key] = UNDEFINED
        elif real_type_of(val) == "object":
            cleaned[key] = clean_nulls(val)
    return cleaned


def remove_undefined(value: Any) -> Any:
    """actions-core removeUndefined: drop undefined object members (array items stay)."""
    if isinstance(value, list):
        return [remove_undefined(item) for item in value]
    if real_type_of(value) == "object":
        return {k: remove_undefined(value[k]) for k in js_keys(value) if value[k] is not UNDEFINED}
    return value


__all__ = ["clean_nulls", "flatten_object", "object_assign", "own_keys", "perform_replace", "remove_undefined",
           "spread"]
