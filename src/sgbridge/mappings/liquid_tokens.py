"""liquidjs building blocks: character classes, expression tokens, string literals, errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from .errors import MappingError

WORD, BLANK, QUOTE, NUMBER, SIGN = 1, 4, 8, 32, 64
_ASCII: Final = [0] * 128
for _c in range(128):
    ch = chr(_c)
    if ch.isascii() and (ch.isalnum() or ch in "_-?"):
        _ASCII[_c] |= WORD
    if ch in "\t\n\v\f\r ":
        _ASCII[_c] |= BLANK
    if ch in "\"'":
        _ASCII[_c] |= QUOTE
    if ch.isdigit():
        _ASCII[_c] |= NUMBER
    if ch in "+-":
        _ASCII[_c] |= SIGN
_UNICODE_BLANK: Final = frozenset([160, 5760, 6158, *range(8192, 8203), 8232, 8233, 8239, 8287, 12288])
_UNICODE_PUNCT: Final = frozenset([8220, 8221])


def char_type(ch: str) -> int:
    if not ch:
        return 0
    code = ord(ch)
    if code < 128:
        return _ASCII[code]
    return BLANK if code in _UNICODE_BLANK else 0


def is_word(ch: str) -> bool:
    if not ch:
        return False
    code = ord(ch)
    if code >= 128:
        return code not in _UNICODE_BLANK and code not in _UNICODE_PUNCT
    return bool(_ASCII[code] & WORD)


class LiquidError(MappingError):
    """A template liquidjs would refuse to parse or render."""


class Unsupported(MappingError):
    """A liquidjs feature this port does not implement (a documented difference)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"@liquid: {what} is not supported by sgbridge")


@dataclass
class Const:
    content: Any  # literal, quoted string, number or identifier


@dataclass
class Op:
    operator: str

    @property
    def precedence(self) -> int:
        return {"and": 0, "or": 0, "not": 1}.get(self.operator, 2)


@dataclass
class PropAccess:
    variable: Any  # a token, or None for a scope lookup
    props: list[Any]


@dataclass
class Range:
    lhs: Any
    rhs: Any


@dataclass
class FilterCall:
    name: str
    args: list[Any]  # tokens, or (key, token) for keyword arguments


@dataclass
class FilteredValue:
    postfix: list[Any]
    filters: list[FilterCall] = field(default_factory=list)


OPERATORS: Final = ("==", "!=", ">", "<", ">=", "<=", "contains", "not", "and", "or")
LITERALS: Final = ("true", "false", "nil", "null", "empty", "blank")
_ESCAPES: Final = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\x0b"}


def parse_string_literal(s: str) -> str:
    """liquidjs parseStringLiteral: drop the quotes, decode \\n, \\uXXXX, octal and identity escapes."""
    out: list[str] = []
    i = 1
    while i < len(s) - 1:
        c = s[i]
        if c != "\\":
            out.append(c)
        elif s[i + 1] in _ESCAPES:
            i += 1
            out.append(_ESCAPES[s[i]])
        elif s[i + 1] == "u":
            j, val = i + 2, 0
            while j <= i + 5 and j < len(s) and s[j] in "0123456789abcdefABCDEF":
                val = val * 16 + int(s[j], 16)
                j += 1
            i = j - 1
            out.append(chr(val))
        elif s[i + 1] not in "01234567":
            i += 1
            out.append(s[i])
        else:
            j, val = i + 1, 0
            while j <= i + 3 and j < len(s) and s[j] in "01234567":
                val = val * 8 + int(s[j])
                j += 1
            i = j - 1
            out.append(chr(val))
        i += 1
    return "".join(out)
