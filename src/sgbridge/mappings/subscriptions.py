"""Segment's trigger language: port of @segment/destination-subscriptions `parseFql` + `validate`.

`parse_subscription('type = "track" and event = "Order Completed"')` returns a Subscription whose
`ast` is the very object parseFql builds and whose `matches(event)` is `validate(ast, event)`.
The parser is Segment's, not a grammar: `and`/`or` in one level take the operator last seen, only
one level of parentheses works, single-quoted strings keep their quotes, `match(x, "abc*")` is a
prefix test and any other `match` is a suffix test on the value minus its first character. See
docs/mappings-language.md for the list.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from ._js import to_number, to_string
from .errors import SubscriptionError
from .fql_eval import group_matches
from .fql_lexer import LexerError, Token, lex

_CONDITION_TYPES: Final = {"type": "event-type", "event": "event", "name": "name", "userId": "userId",
                           "context": "event-context", "properties": "event-property", "traits": "event-trait"}
# `tokenToConditionType[x]` also finds Object.prototype members: truthy, but no branch builds a node.
_PROTOTYPE_NAMES: Final = frozenset({
    "constructor", "__proto__", "toString", "toLocaleString", "valueOf", "hasOwnProperty", "isPrototypeOf",
    "propertyIsEnumerable", "__defineGetter__", "__defineSetter__", "__lookupGetter__", "__lookupSetter__",
})
_NAMED: Final = {"event-property": "properties", "event-trait": "traits", "event-context": "context"}
_PREFIXED: Final = (("properties", "event-property"), ("traits", "event-trait"), ("context", "event-context"))


class _ParseError(Exception):
    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


def _value(tok: Token) -> Any:
    """getTokenValue."""
    if tok.type == "string":
        v = tok.value
        v = v[1:] if v.startswith('"') else v
        return v[:-1] if v.endswith('"') else v
    if tok.type == "number":
        return to_number(tok.value)
    if tok.type == "ident" and tok.value in ("true", "false"):
        return tok.value == "true"
    return tok.value


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix) + 1:] if name.startswith(prefix + ".") else name


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens: deque[Token] = deque(tokens)
        self.last_pos = 0

    def shift(self) -> Token | None:
        if not self.tokens:
            return None
        tok = self.tokens.popleft()
        self.last_pos = tok.pos
        return tok

    def function(self, name: str, nodes: list[Any], negate: bool) -> None:
        self.shift()
        name_tok = self.shift()
        if name_tok is None:
            raise _ParseError(f"{name}() is missing a 1st argument", self.last_pos)
        self.shift()
        value_tok = self.shift()
        if value_tok is None:
            raise _ParseError(f"{name}() is missing a 2nd argument", self.last_pos)
        self.shift()
        if name == "contains":
            operator, value = ("not_contains" if negate else "contains"), to_string(_value(value_tok))
        elif value_tok.value.endswith('*"'):
            operator, value = ("not_starts_with" if negate else "starts_with"), to_string(_value(value_tok))[:-1]
        else:
            operator, value = ("not_ends_with" if negate else "ends_with"), to_string(_value(value_tok))[1:]
        target = name_tok.value
        if target in ("event", "name", "userId"):
            nodes.append({"type": target, "operator": operator, "value": value})
        for prefix, kind in _PREFIXED:
            if target.startswith(prefix):
                nodes.append({"type": kind, "name": _strip(target, prefix), "operator": operator, "value": value})

    def condition(self, kind: str, tok: Token, nodes: list[Any]) -> None:
        op_tok = self.shift()
        if op_tok is None:
            raise _ParseError("Operator token is missing", self.last_pos)
        value_tok = self.shift()
        if value_tok is None:
            raise _ParseError("Value token is missing", self.last_pos)
        op, raw = op_tok.value, value_tok.value
        special = {("!=", "null"): "exists", ("=", "null"): "not_exists", ("=", "true"): "is_true",
                   ("=", "false"): "is_false"}.get((op, raw))
        if kind in ("event", "event-type"):
            nodes.append({"type": kind, "operator": op, "value": to_string(_value(value_tok))})
        elif kind == "name" and special in ("exists", "not_exists"):
            nodes.append({"type": kind, "operator": special})
        elif kind == "name":
            nodes.append({"type": kind, "operator": op, "value": to_string(_value(value_tok))})
        elif kind == "userId":
            if special is not None:
                nodes.append({"type": kind, "operator": special})
            else:
                nodes.append({"type": kind, "operator": op, "value": to_string(_value(value_tok))})
        elif kind in _NAMED:
            node: dict[str, Any] = {"type": kind, "name": _strip(tok.value, _NAMED[kind])}
            if special is not None:
                node["operator"] = special
            elif op in ("=", "!=") and value_tok.type == "number":
                node["operator"] = "number_equals" if op == "=" else "number_not_equals"
                node["value"] = _value(value_tok)
            else:
                node["operator"] = op
                node["value"] = _value(value_tok)
            nodes.append(node)

    def parse(self) -> Any:
        nodes: list[Any] = []
        operator = "and"
        tok = self.shift()
        while tok is not None and tok.type != "eos":
            if tok.type == "ident":
                start = tok.value.split(".")[0]
                kind = _CONDITION_TYPES.get(start)
                if kind is not None or start in _PROTOTYPE_NAMES:
                    self.condition(kind or "", tok, nodes)
                if tok.value in ("contains", "match"):
                    self.function(tok.value, nodes, negate=False)
            if tok.type == "operator" and tok.value == "!":
                if not self.tokens:
                    raise _ParseError("'!' is not followed by anything", tok.pos)
                if self.tokens[0].type == "ident" and self.tokens[0].value in ("contains", "match"):
                    name = self.tokens[0].value
                    self.shift()
                    self.function(name, nodes, negate=True)
            if tok.type == "parenleft":
                group: list[Token] = []
                inner = self.shift()
                while inner is None or inner.type != "parenright":
                    if inner is None:
                        raise _ParseError("unclosed or nested parenthesis", tok.pos)
                    group.append(inner)
                    inner = self.shift()
                group.append(Token("eos", "eos", inner.pos))
                sub = _Parser(group)
                nodes.append(sub.parse())
            if tok.type == "conditional":
                operator = tok.value
            tok = self.shift()
        if len(nodes) > 1:
            return {"type": "group", "operator": operator, "children": nodes}
        return nodes[0] if nodes else None


def parse_fql(text: str) -> dict[str, Any]:
    """parseFql: the AST, always a group at the top; raises SubscriptionError where parseFql returns an error."""
    try:
        tokens = lex(text)
    except LexerError as e:
        raise SubscriptionError(f"invalid subscription {text!r}: {e}") from None
    normalized: list[Token] = []
    i = 0
    while i < len(tokens):  # join `ident . ident` into one dotted identifier
        cur = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if normalized and normalized[-1].type == "ident" and cur.type == "dot" and nxt and nxt.type == "ident":
            prev = normalized.pop()
            normalized.append(Token("ident", f"{prev.value}.{nxt.value}", prev.pos))
            i += 2
        else:
            normalized.append(cur)
            i += 1
    try:
        ast = _Parser(normalized).parse()
    except _ParseError as e:
        raise SubscriptionError(f"invalid subscription {text!r}: {e} (at character {e.pos + 1})") from None
    if ast is None:
        raise SubscriptionError(f"invalid subscription {text!r}: no condition Segment recognises")
    if ast["type"] != "group":
        return {"type": "group", "operator": "and", "children": [ast]}
    return dict(ast)


@dataclass(frozen=True)
class Subscription:
    """A parsed trigger. `ast` is parseFql's output (None for the sgbridge extension `all`)."""

    text: str
    ast: dict[str, Any] | None

    def matches(self, event: dict[str, Any]) -> bool:
        """validate(ast, event); SubscriptionError where Segment's validate would throw."""
        if self.ast is None:
            return True
        return group_matches(self.ast, event)


def parse_subscription(text: str) -> Subscription:
    """Parse a trigger as Segment does. `all` (alone) is accepted as "every event" by sgbridge."""
    if text.strip() == "all":
        return Subscription(text, None)
    return Subscription(text, parse_fql(text))
