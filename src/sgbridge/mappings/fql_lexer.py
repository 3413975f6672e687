"""Port of @segment/fql-ts's lexer (the tokenizer under destination-subscriptions' parseFql).

Ported statement by statement, bugs included, because they decide which triggers Segment accepts:
`!=` and `<=` need whitespace after them, an identifier must be followed by whitespace, `.`, `(`,
`=`, `!`, `,`, `]` or `)` (so `x>1` is an error), `\\r` is an invalid character, a closing quote
that is not followed by a terminator is read as the start of a new string, and `accept` gives back
nothing it read when it hits the end of the input (so a trailing `an` lexes as the identifier `a`).
The input is walked in UTF-16 code units, as JavaScript strings are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ._js import utf16_units

EOS_FLAG: Final = "-1"  # fql-ts's end-of-input marker: no single character equals it
_MAX_LEN: Final = 100000


@dataclass(frozen=True)
class Token:
    type: str
    value: str
    pos: int = 0  # offset (UTF-16 units) where the token starts; not part of fql-ts's tokens


class LexerError(Exception):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position + 1})")
        self.reason = message
        self.position = position


def _join(units: list[str]) -> str:
    # Re-pair surrogate halves that were read one code unit at a time.
    return "".join(units).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _is_alpha(c: str) -> bool:
    return len(c) == 1 and ("a" <= c <= "z" or "A" <= c <= "Z")


def _is_number(c: str) -> bool:
    return len(c) == 1 and "0" <= c <= "9"


def _is_whitespace(c: str) -> bool:
    return c in (" ", "\t", "\n")


def _is_ident(c: str) -> bool:
    return c != EOS_FLAG and (_is_alpha(c) or _is_number(c) or c in ("_", "-", "\\"))


def _is_terminator(c: str) -> bool:
    return c == EOS_FLAG or _is_whitespace(c) or c in (",", "]", ")")


class Lexer:
    def __init__(self, code: str) -> None:
        self.code = utf16_units(code)
        self.position = 0

    def _next(self) -> tuple[str, bool]:
        if self.position == len(self.code):
            return EOS_FLAG, True
        char = self.code[self.position]
        self.position += 1
        return char, False

    def _peek(self) -> str:
        char, eos = self._next()
        if not eos:
            self._backup(1)
        return char

    def _backup(self, count: int) -> None:
        self.position = max(0, self.position - count)

    def _accept(self, s: str) -> bool:
        chars = ""
        for _ in s:
            char, eos = self._next()
            chars += char
            if eos:
                return False  # fql-ts returns here without backing up what it read
            if _is_terminator(char):
                break
        if s == chars and _is_terminator(self._peek()):
            return True
        self._backup(len(chars))
        return False

    def _error(self, message: str) -> LexerError:
        return LexerError(message, self.position)

    def lex(self) -> list[Token]:
        tokens: list[Token] = []
        while True:
            start = self.position
            char, eos = self._next()
            if eos:
                tokens.append(Token("eos", "eos", start))
                return tokens
            if _is_whitespace(char):
                continue
            if char == "!":
                nxt = self._peek()
                if _is_alpha(nxt) or nxt == "(":
                    tokens.append(Token("operator", "!", start))
                    continue
            if _is_alpha(char) or char in ("!", "=", ">", "<", "\\", "_"):
                tok = self._operator_or_conditional(char)
            elif _is_number(char) or char in ("-", "+"):
                tok = self._number(char)
            elif char in ('"', "'"):
                tok = self._string(char)
            else:
                simple = {".": "dot", "[": "brackleft", "]": "brackright", ",": "comma", "(": "parenleft",
                          ")": "parenright"}.get(char)
                if simple is None:
                    raise self._error(f'invalid character "{_join([char])}"')
                tok = Token(simple, char)
            tokens.append(Token(tok.type, tok.value, start))

    def _string(self, quote: str) -> Token:
        units: list[str] = []
        while self._peek() != quote:
            char, eos = self._next()
            units.append(char)
            if eos:
                raise self._error("unterminated string")
            if len(units) >= _MAX_LEN:
                raise self._error("unreasonable string length")
        self._accept(quote)
        return Token("string", quote + _join(units) + quote)

    def _number(self, previous: str) -> Token:
        digits = ""
        coming_up = self._peek()
        is_decimal = False
        while _is_number(coming_up) or coming_up == ".":
            char, _ = self._next()
            digits += char
            if coming_up == ".":
                if _is_terminator(self._peek()):
                    raise self._error("unexpected terminator after decimal point")
                if is_decimal:
                    raise self._error("multiple decimal points in one number")
                is_decimal = True
            if len(digits) >= _MAX_LEN:
                raise self._error("unreasonable number length")
            coming_up = self._peek()
        return Token("number", previous + digits)

    def _operator_or_conditional(self, previous: str) -> Token:
        if previous == "=":
            return Token("operator", "=")
        if previous == "!":
            if self._accept("="):
                return Token("operator", "!=")
            raise self._error(f"expected '=' after '!', got '{self._peek()}'")
        keyword = {"a": ("nd", "conditional", "and"), "o": ("r", "conditional", "or"), "n": ("ull", "null", "null")}
        if previous in keyword:
            rest, kind, value = keyword[previous]
            if self._accept(rest):
                return Token(kind, value)
            return self._ident(previous)
        if previous in ("<", ">"):
            if self._accept("="):
                return Token("operator", previous + "=")
            return Token("operator", previous)
        return self._ident(previous)

    def _ident(self, previous: str) -> Token:
        units: list[str] = []
        char = previous
        while True:
            if char == "\\":
                if self._peek() == EOS_FLAG:
                    raise self._error("expected character after escape character, got EOS")
                char, _ = self._next()
            units.append(char)
            if len(units) >= _MAX_LEN:
                raise self._error("unreasonable literal length")
            if not _is_ident(self._peek()):
                break
            char, _ = self._next()
        coming_up = self._peek()
        if not (_is_terminator(coming_up) or coming_up in (".", "(", "=", "!")):
            raise self._error(f"expected termination character after identifier, got {_join([coming_up])}")
        return Token("ident", _join(units))


def lex(code: str) -> list[Token]:
    """Tokens of `code`, ending with an `eos` token; raises LexerError where fql-ts's lexer fails."""
    return Lexer(code).lex()
