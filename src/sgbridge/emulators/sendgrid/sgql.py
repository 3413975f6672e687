"""A subset of SendGrid's Segmentation Query Language, enough for contact lookups.

Supported (sendgrid/docs ``segmentation-query-language.md``): ``field = 'v'``, ``!=``/``<>``,
``field [NOT] IN ('a', 'b')``, ``field [NOT] LIKE 'pat%'`` (``%`` and ``_``), ``field IS [NOT]
NULL``, ``CONTAINS(list_ids, 'id')``, ``lower(field)``, ``AND``/``OR``/``NOT`` and parentheses.
Fields: the four identifiers, the reserved text fields, ``alternate_emails``, ``list_ids``,
``contact_id`` and custom fields by name. Anything else is a 400, which is what a bridge should
see when it builds a query SendGrid would not understand. Comparisons are case-sensitive, as
SendGrid's are: emails are stored lower-case, so callers must lower-case what they search for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Getter = Callable[[str], Any]  # field name -> value (None when unset; a list for list fields)
Predicate = Callable[[Getter], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><>|!=|=|\(|\)|,)|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)


class SGQLError(ValueError):
    """The query is not valid (or uses SGQL the emulator does not implement)."""


def _tokens(query: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    query = query.rstrip()
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None or match.end() == pos:
            raise SGQLError(f"unexpected input at position {pos}: {query[pos:pos + 20]!r}")
        pos = match.end()
        if match["str"] is not None:
            tokens.append(("lit", match["str"][1:-1].replace("''", "'")))
        elif match["num"] is not None:
            tokens.append(("lit", float(match["num"]) if "." in match["num"] else int(match["num"])))
        elif match["op"] is not None:
            tokens.append(("op", match["op"]))
        else:
            tokens.append(("word", match["word"]))
    return tokens


def _equal(value: Any, literal: Any) -> bool:
    if isinstance(value, int | float) and isinstance(literal, int | float):
        return value == literal
    return value is not None and str(value) == str(literal)


def _like(pattern: str) -> re.Pattern[str]:
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.DOTALL)


class _Parser:
    def __init__(self, query: str, fields: frozenset[str]) -> None:
        self.tokens = _tokens(query)
        self.pos = 0
        self.fields = fields

    def peek_word(self, *words: str) -> bool:
        kind, value = self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", None)
        return kind == "word" and str(value).upper() in words

    def take(self, kind: str, value: str | None = None) -> Any:
        if self.pos >= len(self.tokens):
            raise SGQLError("unexpected end of query")
        got_kind, got = self.tokens[self.pos]
        if got_kind != kind or (value is not None and str(got).upper() != value):
            raise SGQLError(f"expected {value or kind}, found {got!r}")
        self.pos += 1
        return got

    def parse(self) -> Predicate:
        if not self.tokens:
            raise SGQLError("empty query")
        predicate = self.expr()
        if self.pos != len(self.tokens):
            raise SGQLError(f"unexpected {self.tokens[self.pos][1]!r}")
        return predicate

    def expr(self) -> Predicate:
        terms = [self.term()]
        while self.peek_word("OR"):
            self.pos += 1
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else (lambda get: any(t(get) for t in terms))

    def term(self) -> Predicate:
        factors = [self.factor()]
        while self.peek_word("AND"):
            self.pos += 1
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda get: all(f(get) for f in factors))

    def factor(self) -> Predicate:
        if self.peek_word("NOT"):
            self.pos += 1
            inner = self.factor()
            return lambda get: not inner(get)
        if self.pos < len(self.tokens) and self.tokens[self.pos] == ("op", "("):
            self.pos += 1
            inner = self.expr()
            self.take("op", ")")
            return inner
        if self.peek_word("CONTAINS"):
            self.pos += 1
            self.take("op", "(")
            name = self.field()
            self.take("op", ",")
            literal = self.take("lit")
            self.take("op", ")")
            return lambda get: any(_equal(v, literal) for v in (get(name) or []))
        return self.comparison()

    def field(self) -> str:
        name = str(self.take("word"))
        if name.lower() not in self.fields:
            raise SGQLError(f"unknown field {name!r}")
        return name.lower()

    def operand(self) -> Callable[[Getter], Any]:
        if self.peek_word("LOWER"):
            self.pos += 1
            self.take("op", "(")
            name = self.field()
            self.take("op", ")")
            return lambda get: None if get(name) is None else str(get(name)).lower()
        name = self.field()
        return lambda get: get(name)

    def comparison(self) -> Predicate:
        value = self.operand()
        negate = False
        if self.peek_word("NOT"):
            self.pos += 1
            negate = True
        if self.peek_word("IN"):
            self.pos += 1
            self.take("op", "(")
            items = [self.take("lit")]
            while self.tokens[self.pos:self.pos + 1] == [("op", ",")]:
                self.pos += 1
                items.append(self.take("lit"))
            self.take("op", ")")
            return lambda get: any(_equal(value(get), i) for i in items) != negate
        if self.peek_word("LIKE"):
            self.pos += 1
            pattern = _like(str(self.take("lit")))
            return lambda get: (value(get) is not None and bool(pattern.fullmatch(str(value(get))))) != negate
        if self.peek_word("IS") and not negate:
            self.pos += 1
            wants_null = not self.peek_word("NOT")
            if not wants_null:
                self.pos += 1
            self.take("word", "NULL")
            return lambda get: (value(get) in (None, "")) == wants_null
        if negate:
            raise SGQLError("NOT must be followed by IN or LIKE here")
        op = self.take("op")
        if op not in ("=", "!=", "<>"):
            raise SGQLError(f"unsupported operator {op!r}")
        literal = self.take("lit")
        if op == "=":
            return lambda get: _equal(value(get), literal)
        return lambda get: value(get) is not None and not _equal(value(get), literal)


def compile_query(query: str, fields: frozenset[str]) -> Predicate:
    """A predicate over a contact getter; ``fields`` are the names the query may use (lower-case)."""
    return _Parser(query, fields).parse()
