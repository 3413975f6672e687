"""What Segment does to a mapped payload before an action sees it.

actions-core runs three steps on the output of the mapping (destination-kit/action.ts):
``removeEmptyValues`` (nulls where the field does not allow null, empty strings where it is not
a string, and empty strings at the root, are dropped), then ajv with ``coerceTypes: "array"``
and ``removeAdditional: true`` (values are converted to the declared type where ajv can, a
scalar is wrapped for an array field, unknown keys of closed objects are removed), then the
error messages of ``@segment/ajv-human-errors``. The schemas are Segment's own, generated into
the catalog by ``tools/generate_action_catalog.js``. This module is that pipeline for the
subset of JSON Schema those generated schemas use.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

_COERCE_ORDER = ("string", "number", "integer", "boolean", "null")
# ajv-formats "full" e-mail pattern.
_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@"
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
    re.IGNORECASE,
)
_FORMAT_LABELS = {"date-time": "date and time", "email": "email address", "uri": "URI", "date": "date"}


class PayloadInvalid(ValueError):
    """The payload does not fit the action's schema; the message is Segment's, word for word."""


def _types(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    if declared is None:
        return []
    return [declared] if isinstance(declared, str) else list(declared)


def remove_empty_values(value: Any, schema: dict[str, Any], root: bool = False) -> Any:
    """actions-core ``removeEmptyValues``; ``None`` stands for undefined (the key is dropped)."""
    if not schema.get("type") and not schema.get("enum"):
        return value
    if isinstance(value, list):
        items = schema.get("items")
        if not isinstance(items, dict):
            return value
        return [v for v in value if remove_empty_values(v, items) is not _DROP]
    if isinstance(value, dict):
        props = schema.get("properties")
        if not isinstance(props, dict):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            kept = remove_empty_values(item, props.get(key, {}))
            if kept is _DROP or (root and kept == ""):
                continue
            out[key] = kept
        return out
    types = _types(schema)
    if value is None and "null" not in types:
        return _DROP
    if value == "" and "string" not in types:
        return _DROP
    return value


class _Drop:
    def __repr__(self) -> str:
        return "<dropped>"


_DROP: Any = _Drop()


def _js_string(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _coerce_scalar(value: Any, target: str) -> Any:
    """ajv's coercion of one value to one type; ``_DROP`` when it cannot."""
    if target == "string":
        if value is None:
            return ""
        if isinstance(value, bool | int | float):
            return _js_string(value)
    elif target in ("number", "integer"):
        if isinstance(value, bool):
            return 1 if value else 0
        if value is None:
            return 0
        if isinstance(value, str) and value.strip() != "":
            try:
                number = float(value)
            except ValueError:
                return _DROP
            if not math.isfinite(number) or (target == "integer" and not number.is_integer()):
                return _DROP
            return int(number) if number.is_integer() else number
    elif target == "boolean":
        if value == "true" or (value == 1 and not isinstance(value, bool)):
            return True
        if value == "false" or value is None or (value == 0 and not isinstance(value, bool)):
            return False
    elif target == "null" and (value == "" or value is False or (value == 0 and not isinstance(value, bool))):
        return None
    return _DROP


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    return True


def _js_type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _humanize(items: list[str], conjunction: str) -> str:
    if len(items) <= 1:
        return items[0] if items else "nothing"
    if len(items) == 2:
        return f"{items[0]} {conjunction} {items[1]}"
    return f"{', '.join(items[:-1])}, {conjunction} {items[-1]}"


def _format_ok(value: str, fmt: str) -> bool:
    if fmt == "email":
        return bool(_EMAIL.match(value))
    if fmt == "uri":
        parts = urlsplit(value)
        # ajv-formats' uri: RFC 3986, ASCII only (a non-ASCII path must be percent-encoded)
        return bool(parts.scheme) and bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", parts.scheme)) \
            and " " not in value and value.isascii()
    if fmt == "date-time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return "T" in value or " " in value
    if fmt == "date-like":
        return _date_like(value)
    return True  # "password", "text" and unknown formats are annotations


def _date_like(value: str) -> bool:
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


class _Unwrapped:
    """A one-element array whose element already had an allowed type (ajv refuses it)."""

    def __init__(self, element: Any) -> None:
        self.element = element


class _Validator:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, schema: dict[str, Any], path: str, message: str) -> None:
        title = schema.get("title")
        preamble = title if title else ("the root value" if path == "" else f"the value at {path}")
        text = f"{preamble} {message}"
        self.errors.append(text[:1].upper() + text[1:] + ".")

    def check(self, value: Any, schema: dict[str, Any], path: str) -> Any:
        """The coerced value (ajv coerces in place); records errors."""
        types = _types(schema)
        if types and not any(_type_ok(value, t) for t in types):
            coerced = self._coerce(value, types)
            if coerced is _DROP or isinstance(coerced, _Unwrapped):
                expected = _humanize(types, "or")
                shown = coerced.element if isinstance(coerced, _Unwrapped) else value
                self.fail(schema, path, f"must be {_article(expected)} {expected} but it was {_js_type_of(shown)}")
                return value
            value = coerced
        if "enum" in schema and value not in schema["enum"]:
            allowed = _humanize([_json(v) for v in schema["enum"]], "or")
            self.fail(schema, path, f"must be one of: {allowed}")
        if isinstance(value, str):
            value = self._check_string(value, schema, path)
        elif isinstance(value, dict):
            value = self._check_object(value, schema, path)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            value = [self.check(v, schema["items"], f"{path}/{i}") for i, v in enumerate(value)]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                self.fail(schema, path, f"must be equal to or greater than {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                self.fail(schema, path, f"must be equal to or less than {schema['maximum']}")
        return value

    def _coerce(self, value: Any, types: list[str]) -> Any:
        if "array" in types and not isinstance(value, list) and value is not None:
            return [value]  # coerceTypes: "array"
        if isinstance(value, list) and len(value) == 1 and "array" not in types:
            value = value[0]
            if value is not None and any(_type_ok(value, t) for t in types):
                # ajv (coerceTypes "array") unwraps the element, finds no coercion to make, and
                # reports a type error naming the element's type: ["x"] for a string field is
                # refused ("must be a string or null but it was a string"), [5] becomes "5".
                return _Unwrapped(value)
        for target in _COERCE_ORDER:
            if target in types:
                coerced = _coerce_scalar(value, target)
                if coerced is not _DROP:
                    return coerced
        return _DROP

    def _check_string(self, value: str, schema: dict[str, Any], path: str) -> str:
        fmt = schema.get("format")
        if isinstance(fmt, str) and not _format_ok(value, fmt):
            label = _FORMAT_LABELS.get(fmt, fmt)
            self.fail(schema, path, f"must be a valid {label} string but it was not")
        for key, word in (("minLength", "or more"), ("maxLength", "or fewer")):
            limit = schema.get(key)
            if isinstance(limit, int) and (len(value) < limit if key == "minLength" else len(value) > limit):
                chars = "character" if limit == 1 else "characters"
                actual = "character" if len(value) == 1 else "characters"
                self.fail(schema, path, f"must be {limit} {chars} {word} but it was {len(value)} {actual}")
        return value

    def _check_object(self, value: dict[str, Any], schema: dict[str, Any], path: str) -> dict[str, Any]:
        props = schema.get("properties")
        if isinstance(props, dict):
            if schema.get("additionalProperties") is False:
                value = {k: v for k, v in value.items() if k in props}  # removeAdditional
            for key, sub in props.items():
                if key in value and isinstance(sub, dict):
                    value[key] = self.check(value[key], sub, f"{path}/{key}")
        for name in schema.get("required") or []:
            if name not in value:
                self.fail(schema, path, f"is missing the required field '{name}'")
        for part in schema.get("allOf") or []:  # fieldsToJsonSchema's conditional "required"
            if isinstance(part, dict) and isinstance(part.get("if"), dict) and _holds(value, part["if"]):
                for name in (part.get("then") or {}).get("required") or []:
                    if name not in value:
                        self.fail(schema, path, f"is missing the required field '{name}'")
        return value


def _holds(value: dict[str, Any], condition: dict[str, Any]) -> bool:
    """An ``if`` of the subset actions-core writes: ``required`` names and ``const``/``enum`` properties."""
    if any(name not in value for name in condition.get("required") or []):
        return False
    for key, sub in (condition.get("properties") or {}).items():
        if key not in value or not isinstance(sub, dict):
            continue
        if "const" in sub and value[key] != sub["const"]:
            return False
        if "enum" in sub and value[key] not in sub["enum"]:
            return False
    return True


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def prepare_payload(payload: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """removeEmptyValues + ajv (coercion, removal of unknown keys) + Segment's error text."""
    cleaned = remove_empty_values(payload if isinstance(payload, dict) else {}, schema, root=True)
    validator = _Validator()
    result = validator.check(cleaned, schema, "")
    if validator.errors:
        raise PayloadInvalid(" ".join(validator.errors))
    return result if isinstance(result, dict) else {}
