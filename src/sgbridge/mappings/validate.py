"""Port of mapping-kit's validate.ts: checks a mapping's shape before it is run.

Kept structurally identical to the TypeScript (including which checks recurse and which stack a
message is reported under) so the same mapping fails with the same list of messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ._js import UNDEFINED, json_stringify, real_type_of, utf16_len
from .errors import MappingError, MappingIssue

MAX_PATTERN_LENGTH: Final = 10
MAX_REPLACEMENT_LENGTH: Final = 10

Stack = list[str]
Validator = Callable[[Any, Stack], None]


class _Invalid(Exception):
    def __init__(self, issue: MappingIssue) -> None:
        super().__init__(issue.segment_message)
        self.issue = issue


class _Aggregate(Exception):
    def __init__(self, errors: list[Exception]) -> None:
        super().__init__("aggregate")
        self.issues: list[MappingIssue] = []
        for e in errors:  # flatAggregate: nested aggregates are spliced in
            if isinstance(e, _Aggregate):
                self.issues.extend(e.issues)
            elif isinstance(e, _Invalid):
                self.issues.append(e.issue)


def _err(message: str, stack: Stack) -> _Invalid:
    return _Invalid(MappingIssue(tuple(stack), message))


def _article(s: str) -> str:
    return "an" if s[:1] in ("a", "e", "i", "o", "u") else "a"


def _type_or_directive(v: Any) -> str:
    t = real_type_of(v)
    if t == "object" and any(k.startswith("@") for k in v):
        return "directive"
    return t


def _is_directive(obj: Any) -> bool:
    if not isinstance(obj, dict) or not any(k.startswith("@") for k in obj):
        return False
    return all(k.startswith("@") or k == "_metadata" for k in obj)


def _validate_directive(obj: Any, stack: Stack) -> None:
    if not _is_directive(obj) and real_type_of(obj) != "object":
        t = real_type_of(obj)
        raise _err(f"should be a directive object but it is {_article(t)} {t}", stack)
    keys = list(obj)
    directive_keys = [k for k in keys if k.startswith("@")]
    if len(directive_keys) > 1:
        raise _err(f"should only have one @-prefixed key but it has {len(directive_keys)} keys", stack)
    if any(not k.startswith("@") and k != "_metadata" for k in keys):
        raise _err(f"should only have one @-prefixed key but it has {len(keys)} keys", stack)
    key = directive_keys[0]
    fn = _DIRECTIVES.get(key)
    if fn is None:
        raise _err(f"has an invalid directive: {key}", stack)
    try:
        fn(obj[key], [*stack, key])
    except (_Invalid, _Aggregate):
        raise
    except Exception as e:  # mapping-kit wraps any other failure as a ValidationError at this level
        raise _err(str(e), stack) from e


def _directive_or_raw(v: Any, stack: Stack) -> None:
    t = _type_or_directive(v)
    if t == "directive":
        _validate_directive(v, stack)
    elif t not in ("object", "array", "boolean", "string", "number", "null"):
        raise _err(f"should be a mapping directive or a JSON value but it is {_article(t)} {t}", stack)


def _directive_or_string(v: Any, stack: Stack) -> None:
    t = _type_or_directive(v)
    if t == "directive":
        _validate_directive(v, stack)
    elif t != "string":
        raise _err(f"should be a string or a mapping directive but it is {_article(t)} {t}", stack)


def _directive_or_object(v: Any, stack: Stack) -> None:
    t = _type_or_directive(v)
    if t == "directive":
        _validate_directive(v, stack)
    elif t == "object":
        _validate_object(v, stack)
    else:
        raise _err(f"should be a object or a mapping directive but it is {_article(t)} {t}", stack)


def _chain(*validators: Validator) -> Validator:
    def run(v: Any, stack: Stack) -> None:
        for validator in validators:
            validator(v, stack)

    return run


def _string_length(lo: int, hi: int) -> Validator:
    def run(v: Any, stack: Stack) -> None:
        if isinstance(v, str) and utf16_len(v) < lo:
            raise _err(f"should be a string of length {lo} or greater", stack)
        if isinstance(v, str) and utf16_len(v) > hi:
            raise _err(f"should be a string of length {hi} or less", stack)

    return run


def _string(v: Any, stack: Stack) -> None:
    t = _type_or_directive(v)
    if t != "string":
        raise _err(f"should be a string but it is {_article(t)} {t}", stack)


def _allowed_strings(*allowed: str) -> Validator:
    def run(v: Any, stack: Stack) -> None:
        _string(v, stack)
        if v.lower() not in allowed:
            raise _err(f"should be one of {', '.join(allowed)} but it is {json_stringify(v)}", stack)

    return run


def _boolean(v: Any, stack: Stack) -> None:
    t = _type_or_directive(v)
    if t != "boolean":
        raise _err(f"should be a boolean but it is {_article(t)} {t}", stack)


def _validate_object(value: Any, stack: Stack) -> None:
    t = _type_or_directive(value)
    if t != "object":
        raise _err(f"should be an object but it is {_article(t)} {t}", stack)
    key = next((k for k in value if k.startswith("@")), None)
    if key is not None:  # unreachable in practice: such objects are typed "directive" above
        raise _err(f"shouldn't have directive (@-prefixed) keys but it has {json_stringify(key)}", stack)
    errors: list[Exception] = []
    for k in value:
        try:
            validate(value[k], [*stack, k])
        except (_Invalid, _Aggregate) as e:
            errors.append(e)
    if errors:
        raise _Aggregate(errors)


def _with_fields(value: Any, fields: dict[str, tuple[bool, Validator]], stack: Stack) -> None:
    _validate_object(value, stack)
    errors: list[Exception] = []
    for prop, (required, check) in fields.items():
        try:
            if prop not in value:
                if required:
                    raise _err(f"should have field {json_stringify(prop)} but it doesn't", stack)
                continue
            check(value[prop], [*stack, prop])
        except (_Invalid, _Aggregate) as e:
            errors.append(e)
    if errors:
        raise _Aggregate(errors)


def _array(v: Any, stack: Stack) -> None:
    t = real_type_of(v)
    if t != "array":
        raise _err(f"should be an array but it is {_article(t)} {t}", stack)


REQ, OPT = True, False


def _if(v: Any, s: Stack) -> None:
    _with_fields(v, {"exists": (OPT, _directive_or_raw), "then": (OPT, _directive_or_raw),
                     "else": (OPT, _directive_or_raw)}, s)


def _case(v: Any, s: Stack) -> None:
    _with_fields(v, {"operator": (OPT, _string), "value": (OPT, _directive_or_string)}, s)


def _replace(v: Any, s: Stack) -> None:
    _with_fields(v, {
        "pattern": (REQ, _chain(_string, _string_length(1, MAX_PATTERN_LENGTH))),
        "replacement": (OPT, _chain(_string, _string_length(0, MAX_REPLACEMENT_LENGTH))),
        "value": (REQ, _directive_or_string),
        "ignorecase": (OPT, _boolean),
        "global": (OPT, _boolean),
    }, s)


def _array_path(v: Any, s: Stack) -> None:
    _array(v, s)
    _directive_or_string(v[0] if v else UNDEFINED, s)
    validate(v[1] if len(v) > 1 else UNDEFINED, s)


def _json(v: Any, s: Stack) -> None:
    _with_fields(v, {"value": (REQ, _directive_or_raw), "mode": (REQ, _allowed_strings("encode", "decode"))}, s)


def _flatten(v: Any, s: Stack) -> None:
    _with_fields(v, {"separator": (OPT, _string), "value": (REQ, _directive_or_raw)}, s)


def _merge(v: Any, s: Stack) -> None:
    _with_fields(v, {"direction": (OPT, _allowed_strings("left", "right")), "objects": (REQ, _array)}, s)
    for obj in v["objects"]:
        _directive_or_object(obj, [])  # mapping-kit passes no stack here, so paths restart at "/"


def _transform(v: Any, s: Stack) -> None:
    _with_fields(v, {"apply": (REQ, _directive_or_object), "mapping": (REQ, _directive_or_object)}, s)


_DIRECTIVES: Final[dict[str, Validator]] = {
    "@if": _if,
    "@case": _case,
    "@replace": _replace,
    "@arrayPath": _array_path,
    "@path": _directive_or_string,
    "@json": _json,
    "@flatten": _flatten,
    "@merge": _merge,
    "@template": _directive_or_string,
    "@literal": _directive_or_raw,
    "@transform": _transform,
    "@excludeWhenNull": _directive_or_raw,
    "@liquid": _string,
}


def validate(mapping: Any, stack: Stack | None = None) -> None:
    """mapping-kit's `validate(mapping, stack)`; raises the internal error types."""
    stack = stack or []
    t = _type_or_directive(mapping)
    if t == "directive":
        _validate_directive(mapping, stack)
    elif t == "object":
        _validate_object(mapping, stack)
    elif t == "array":
        _array(mapping, stack)


def validate_mapping(mapping: Any) -> None:
    """Raise MappingError (kind "validation") listing every problem, as mapping-kit's validate would."""
    try:
        validate(mapping)
    except _Invalid as e:
        raise MappingError.from_issues([e.issue]) from None
    except _Aggregate as e:
        raise MappingError.from_issues(e.issues) from None
