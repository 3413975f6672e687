"""@liquid: a port of the part of liquidjs 10 that Segment's mapping-kit exposes.

Segment renders `{"@liquid": "..."}` with `liquidEngine.parseAndRenderSync(template, payload)`,
templates of at most 1000 characters, the tags case/for/include/layout/render/tablerow and a list
of filters disabled. This module ports liquidjs's template tokenizer (including `{{-`/`-%}`
whitespace control and raw blocks), the if/unless/assign/capture/comment/raw/echo/#/break tags and
the rendering rules; liquid_tokens, liquid_eval and liquid_filters hold the rest. What is not
ported (dates, increment/decrement/cycle, the `liquid` tag, keyword filter arguments other than
`allow_false`, `json` indentation) raises MappingError saying so: see docs/mappings-language.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from ._js import UNDEFINED, repair_surrogates, utf16_len
from .errors import MappingError
from .liquid_eval import Context, eval_filtered, is_falsy, liquid_stringify, to_value
from .liquid_expr import Tokenizer
from .liquid_lexer import Delimited, Html, lex_template
from .liquid_tokens import FilteredValue, LiquidError, Unsupported

DISABLED_TAGS: Final = frozenset({"case", "for", "include", "layout", "render", "tablerow"})
NOT_PORTED_TAGS: Final = frozenset({"increment", "decrement", "cycle", "liquid", "block"})


@dataclass
class Node:
    kind: str
    text: str = ""
    value: FilteredValue | None = None
    key: str = ""
    branches: list[tuple[FilteredValue, bool, list[Node]]] = field(default_factory=list)
    else_nodes: list[Node] | None = None


class _Parser:
    def __init__(self, text: str, tokens: list[Any]) -> None:
        self.text = text
        self.tokens = tokens

    def args_tokenizer(self, tok: Delimited) -> Tokenizer:
        return Tokenizer(self.text, tok.args_at, tok.content[1])

    def parse_all(self) -> list[Node]:
        nodes = []
        while self.tokens:
            nodes.append(self.parse(self.tokens.pop(0)))
        return nodes

    def parse(self, tok: Any) -> Node:
        if isinstance(tok, Html):
            lo = tok.begin + tok.trim_left
            return Node("html", self.text[lo:max(lo, tok.end - tok.trim_right)])
        if tok.kind == "output":
            return Node("output", value=Tokenizer(self.text, *tok.content).read_filtered_value())
        name = tok.name
        if name in DISABLED_TAGS:
            raise LiquidError(f'@liquid: tag "{name}" is disabled')
        if name in NOT_PORTED_TAGS:
            raise Unsupported(f'the "{name}" tag')
        parse = getattr(self, "tag_" + {"#": "hash"}.get(name, name), None)
        if parse is None:
            raise LiquidError(f'@liquid: tag "{name}" not found')
        node: Node = parse(tok)
        return node

    def _until(self, end: str, opener: Delimited) -> list[Any]:
        taken: list[Any] = []
        while self.tokens:
            t = self.tokens.pop(0)
            if isinstance(t, Delimited) and t.kind == "tag" and t.name == end:
                return taken
            taken.append(t)
        raise LiquidError(f"@liquid: tag {self.text[opener.begin:opener.end]} not closed")

    def tag_assign(self, tok: Delimited) -> Node:
        t = self.args_tokenizer(tok)
        key = t.read_identifier()
        if not key:
            raise LiquidError("@liquid: expected variable name")
        t.skip_blank()
        if t.peek() != "=":
            raise LiquidError('@liquid: expected "="')
        t.p += 1
        return Node("assign", key=key, value=t.read_filtered_value())

    def tag_capture(self, tok: Delimited) -> Node:
        t = self.args_tokenizer(tok)
        key = t.read_identifier()
        if not key:
            quoted = t.read_quoted()
            if quoted is None:
                raise LiquidError("@liquid: invalid capture name")
            key = quoted.content
        body: list[Node] = []
        while self.tokens:
            t2 = self.tokens.pop(0)
            if isinstance(t2, Delimited) and t2.kind == "tag" and t2.name == "endcapture":
                return Node("capture", key=key, branches=[(FilteredValue([]), True, body)])
            body.append(self.parse(t2))
        raise LiquidError("@liquid: capture not closed")

    def tag_comment(self, tok: Delimited) -> Node:
        self._until("endcomment", tok)
        return Node("html")

    def tag_raw(self, tok: Delimited) -> Node:
        return Node("html", text="".join(self.text[t.begin:t.end] for t in self._until("endraw", tok)))

    def tag_echo(self, tok: Delimited) -> Node:
        t = self.args_tokenizer(tok)
        t.skip_blank()
        return Node("output", value=None if t.end() else t.read_filtered_value())

    def tag_hash(self, tok: Delimited) -> Node:
        import re

        if re.search(r"\n\s*[^#\s]", self.text[tok.args_at:tok.content[1]]):
            raise LiquidError("@liquid: every line of an inline comment must start with a '#' character")
        return Node("html")

    def tag_break(self, tok: Delimited) -> Node:
        return Node("break")

    tag_continue = tag_break

    def tag_if(self, tok: Delimited) -> Node:
        node = Node("if", branches=[(self.args_tokenizer(tok).read_filtered_value(), True, [])])
        current = node.branches[0][2]
        while self.tokens:
            t = self.tokens.pop(0)
            if isinstance(t, Delimited) and t.kind == "tag" and t.name in ("elsif", "else", "endif"):
                if t.name != "elsif" and self.text[t.args_at:t.content[1]]:
                    raise LiquidError(f"@liquid: unexpected {self.text[t.args_at:t.content[1]]!r}")
                if t.name == "endif":
                    return node
                if node.else_nodes is not None:
                    raise LiquidError("@liquid: unexpected elsif after else" if t.name == "elsif" else
                                      "@liquid: duplicated else")
                if t.name == "elsif":
                    node.branches.append((self.args_tokenizer(t).read_filtered_value(), True, []))
                    current = node.branches[-1][2]
                else:
                    current = node.else_nodes = []
                continue
            current.append(self.parse(t))
        raise LiquidError(f"@liquid: tag {self.text[tok.begin:tok.end]} not closed")

    def tag_unless(self, tok: Delimited) -> Node:
        node = Node("if", branches=[(self.args_tokenizer(tok).read_filtered_value(), False, [])], else_nodes=[])
        current: list[Node] = node.branches[0][2]
        else_count = 0
        while self.tokens:
            t = self.tokens.pop(0)
            if isinstance(t, Delimited) and t.kind == "tag" and t.name in ("elsif", "else", "endunless"):
                if t.name == "endunless":
                    return node
                if t.name == "else":
                    else_count += 1
                    current = node.else_nodes if node.else_nodes is not None else []
                elif else_count > 0:
                    current = []
                else:
                    node.branches.append((self.args_tokenizer(t).read_filtered_value(), True, []))
                    current = node.branches[-1][2]
                continue
            parsed = self.parse(t)
            if current is not node.else_nodes or else_count == 1:
                current.append(parsed)
        raise LiquidError(f"@liquid: tag {self.text[tok.begin:tok.end]} not closed")


def _render(nodes: list[Node], ctx: Context, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "html":
            out.append(node.text)
        elif node.kind == "output":
            if node.value is not None:
                out.append(liquid_stringify(to_value(eval_filtered(node.value, ctx))))
        elif node.kind == "assign" and node.value is not None:
            ctx.scope[node.key] = eval_filtered(node.value, ctx)
        elif node.kind == "capture":
            buf: list[str] = []
            _render(node.branches[0][2], ctx, buf)
            ctx.scope[node.key] = repair_surrogates("".join(buf))
        elif node.kind == "break":
            ctx.break_called = True
        elif node.kind == "if":
            for cond, when_truthy, body in node.branches:
                if is_falsy(to_value(eval_filtered(cond, ctx))) != when_truthy:
                    _render(body, ctx, out)
                    break
            else:
                _render(node.else_nodes or [], ctx, out)
        if ctx.break_called:
            break


def evaluate_liquid(value: Any, payload: Any) -> str:
    """mapping-kit evaluateLiquid: render `value` with the payload as the template's variables."""
    if not isinstance(value, str):
        raise MappingError("liquid template value must be a string")
    if value == "":
        return ""
    if utf16_len(value) > 1000:
        raise MappingError("liquid template values are limited to 1000 characters")
    tokens = lex_template(value)
    nodes = _Parser(value, tokens).parse_all()
    out: list[str] = []
    _render(nodes, Context({} if payload is UNDEFINED or payload is None else payload), out)
    return repair_surrogates("".join(out))
