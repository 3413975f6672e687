"""Port of liquidjs's Tokenizer (the expression half): values, operators, filters.

Segment's @liquid runs liquidjs 10 with its default options (no grouped expressions, lax filters,
own-property lookups). The reader follows liquidjs method by method, since its leniency is the
behaviour: an expression stops at the first thing it cannot read, `a b` evaluates to `a`, `-`
and `?` are word characters, a literal needs a non-word character after it, and so on.
"""

from __future__ import annotations

from typing import Any

from ._js import to_number
from .liquid_tokens import (
    BLANK,
    LITERALS,
    NUMBER,
    OPERATORS,
    QUOTE,
    SIGN,
    Const,
    FilterCall,
    FilteredValue,
    LiquidError,
    Op,
    PropAccess,
    Range,
    char_type,
    is_word,
    parse_string_literal,
)


class Tokenizer:
    def __init__(self, text: str, begin: int = 0, end: int | None = None) -> None:
        self.input = text
        self.p = begin
        self.n = len(text) if end is None else end

    # -- helpers ---------------------------------------------------------------------------
    def peek(self, k: int = 0) -> str:
        return "" if self.p + k >= self.n else self.input[self.p + k]

    def peek_type(self, k: int = 0) -> int:
        return 0 if self.p + k >= self.n else char_type(self.input[self.p + k])

    def end(self) -> bool:
        return self.p >= self.n

    def skip_blank(self) -> None:
        while self.peek_type() & BLANK:
            self.p += 1

    def error(self, message: str) -> LiquidError:
        return LiquidError(f"@liquid: {message}")

    def read_identifier(self) -> str:
        self.skip_blank()
        begin = self.p
        while not self.end() and is_word(self.peek()):
            self.p += 1
        return self.input[begin:self.p]

    def read_to(self, end: str) -> int:
        while self.p < self.n:
            self.p += 1
            if self.input[:self.p].endswith(end):
                return self.p
        return -1

    def _match_words(self, words: tuple[str, ...]) -> int:
        """matchTrie: the longest listed word at p; words ending in a word char need a boundary."""
        best = ""
        for w in words:
            if self.input.startswith(w, self.p) and self.p + len(w) <= self.n and len(w) > len(best):
                best = w
        if not best:
            return -1
        if is_word(best[-1]) and is_word(self.peek(len(best))):
            return -1
        return self.p + len(best)

    # -- expressions -------------------------------------------------------------------------
    def read_filtered_value(self) -> FilteredValue:
        tokens = self.read_expression_tokens()
        if not tokens:
            raise self.error(f"invalid value expression: {self.input[self.p:self.n]!r}")
        return FilteredValue(_to_postfix(tokens), self.read_filters())

    def read_expression_tokens(self) -> list[Any]:
        tokens: list[Any] = []
        while self.p < self.n:
            op = self.read_operator()
            if op is not None:
                tokens.append(op)
                continue
            value = self.read_value()
            if value is None:
                break
            tokens.append(value)
        return tokens

    def read_operator(self) -> Op | None:
        self.skip_blank()
        end = self._match_words(OPERATORS)
        if end == -1:
            return None
        op = Op(self.input[self.p:end])
        self.p = end
        return op

    def read_filters(self) -> list[FilterCall]:
        filters = []
        while (f := self.read_filter()) is not None:
            filters.append(f)
        return filters

    def read_filter(self) -> FilterCall | None:
        self.skip_blank()
        if self.end() or self.peek() in (")", ","):
            return None
        if self.input[self.p] != "|":
            self.p += 1
            raise self.error('expected "|" before filter')
        self.p += 1
        name = self.read_identifier()
        if not name:
            if not self.end():
                raise self.error("expected filter name")
            return None
        args: list[Any] = []
        self.skip_blank()
        if self.peek() == ":":
            while True:
                self.p += 1
                arg = self.read_filter_arg()
                if arg is not None:
                    args.append(arg)
                self.skip_blank()
                if not (self.end() or self.peek() in (",", "|", ")")):
                    raise self.error(f"unexpected character {self.input[self.p:self.n]!r}")
                if self.peek() != ",":
                    break
        elif not (self.peek() in ("|", ")", ",") or self.end()):
            raise self.error('expected ":" after filter name')
        return FilterCall(name, args)

    def read_filter_arg(self) -> Any:
        self.skip_blank()
        begin = self.p
        key = self.read_value()
        if key is None:
            return None
        key_text = self.input[begin:self.p]
        self.skip_blank()
        if self.peek() != ":":
            return key
        self.p += 1
        return (key_text, self.read_value())

    def read_value(self) -> Any:
        self.skip_blank()
        variable: Any = self.read_literal() or self.read_quoted() or self.read_number()
        if variable is None and self.peek() == "(":
            variable = self.read_range()
        props = self.read_properties(variable is None)
        if not props:
            return variable
        return PropAccess(variable, props)

    def read_properties(self, is_begin: bool) -> list[Any]:
        props: list[Any] = []
        while True:
            if self.peek() == "[":
                self.p += 1
                prop = self.read_value() or Const("")
                if self.read_to("]") == -1:
                    raise self.error("[ not closed")
                props.append(prop)
                continue
            if is_begin and not props:
                ident = self.read_identifier()
                if ident:
                    props.append(Const(ident))
                    continue
            if self.peek() == "." and self.peek(1) != ".":
                self.p += 1
                ident = self.read_identifier()
                if not ident:
                    break
                props.append(Const(ident))
                continue
            break
        return props

    def read_number(self) -> Const | None:
        self.skip_blank()
        decimal = digit = False
        k = 1 if self.peek_type() & SIGN else 0
        while self.p + k <= self.n:
            if self.peek_type(k) & NUMBER:
                digit = True
                k += 1
            elif self.peek(k) == "." and self.peek(k + 1) != ".":
                if decimal or not digit:
                    return None
                decimal = True
                k += 1
            else:
                break
        if digit and not is_word(self.peek(k)):
            tok = Const(to_number(self.input[self.p:self.p + k]))
            self.p += k
            return tok
        return None

    def read_literal(self) -> Const | None:
        self.skip_blank()
        end = self._match_words(LITERALS)
        if end == -1:
            return None
        from .liquid_eval import literal_value

        tok = Const(literal_value(self.input[self.p:end]))
        self.p = end
        return tok

    def read_quoted(self) -> Const | None:
        self.skip_blank()
        begin = self.p
        if not self.peek_type() & QUOTE:
            return None
        self.p += 1
        escaped = False
        while self.p < self.n:
            self.p += 1
            if self.input[self.p - 1] == self.input[begin] and not escaped:
                break
            if escaped:
                escaped = False
            elif self.input[self.p - 1] == "\\":
                escaped = True
        return Const(parse_string_literal(self.input[begin:self.p]))

    def read_range(self) -> Range:
        self.p += 1
        lhs = self.read_value()
        if lhs is None:
            raise self.error("unexpected token, value expected")
        self.skip_blank()
        if self.peek() == "." and self.peek(1) == ".":
            self.p += 2
            rhs = self.read_value()
            if rhs is None:
                raise self.error("unexpected token, value expected")
            self.skip_blank()
            ok = self.peek() == ")"
            self.p += 1
            if not ok:
                raise self.error("invalid range syntax")
            return Range(lhs, rhs)
        raise self.error("invalid range syntax")


def _to_postfix(tokens: list[Any]) -> list[Any]:
    out: list[Any] = []
    ops: list[Op] = []
    for tok in tokens:
        if isinstance(tok, Op):
            while ops and ops[-1].precedence > tok.precedence:
                out.append(ops.pop())
            ops.append(tok)
        else:
            out.append(tok)
    out.extend(reversed(ops))
    return out
