"""liquidjs's template tokenizer: text, `{% tag %}` and `{{ output }}` tokens, raw blocks, `-` trimming."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .liquid_expr import Tokenizer
from .liquid_tokens import BLANK, LiquidError, char_type


@dataclass
class Html:
    begin: int
    end: int
    trim_left: int = 0
    trim_right: int = 0


@dataclass
class Delimited:
    kind: str  # "tag" or "output"
    begin: int
    end: int
    content: tuple[int, int]
    trim_left: bool
    trim_right: bool
    name: str = ""
    args_at: int = 0


def _delimited(text: str, kind: str, begin: int, end: int) -> Delimited:
    cb, ce = begin + 2, end - 2
    tl = cb < len(text) and text[cb] == "-"
    tr = ce - 1 >= 0 and text[ce - 1] == "-"
    lo, hi = (cb + 1 if tl else cb), (ce - 1 if tr else ce)
    while lo < hi and char_type(text[lo]) & BLANK:
        lo += 1
    while hi > lo and char_type(text[hi - 1]) & BLANK:
        hi -= 1
    tok = Delimited(kind, begin, end, (lo, hi), tl, tr)
    if kind == "tag":
        t = Tokenizer(text, lo, hi)
        t.skip_blank()
        if t.peek() == "#":
            tok.name, t.p = "#", t.p + 1
        else:
            tok.name = t.read_identifier()
        if not tok.name:
            raise LiquidError("@liquid: illegal tag syntax, tag name expected")
        t.skip_blank()
        tok.args_at = t.p
    return tok


class _Lexer(Tokenizer):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.raw_begin_at = -1

    def rmatch(self, s: str) -> bool:
        return self.p >= len(s) and self.input[self.p - len(s):self.p] == s

    def read_to_delimiter(self, delim: str, respect_quoted: bool) -> int:
        self.skip_blank()
        while self.p < self.n:
            if respect_quoted and self.input[self.p] in "\"'":
                self.read_quoted()
                continue
            self.p += 1
            if self.rmatch(delim):
                return self.p
        return -1

    def tokens(self) -> list[Any]:
        out: list[Any] = []
        while self.p < self.n:
            begin = self.p
            if self.raw_begin_at > -1:
                out.append(self.raw_content())
            elif self.input.startswith("{%", self.p):
                if self.read_to_delimiter("%}", False) == -1:
                    raise LiquidError("@liquid: tag not closed")
                tok = _delimited(self.input, "tag", begin, self.p)
                if tok.name == "raw":
                    self.raw_begin_at = begin
                out.append(tok)
            elif self.input.startswith("{{", self.p):
                if self.read_to_delimiter("}}", True) == -1:
                    raise LiquidError("@liquid: output not closed")
                out.append(_delimited(self.input, "output", begin, self.p))
            else:
                while self.p < self.n and not self.input.startswith(("{%", "{{"), self.p):
                    self.p += 1
                out.append(Html(begin, self.p))
        return out

    def raw_content(self) -> Any:
        begin = self.p
        left = self.read_to("{%") - 2
        while self.p < self.n:
            if self.read_identifier() != "endraw":
                left = self.read_to("{%") - 2
                continue
            while self.p <= self.n:
                if self.rmatch("%}"):
                    if begin == left:
                        self.raw_begin_at = -1
                        return _delimited(self.input, "tag", begin, self.p)
                    self.p = left
                    return Html(begin, left)
                if self.rmatch("{%"):
                    break
                self.p += 1
        raise LiquidError("@liquid: raw not closed")


def _whitespace_control(text: str, tokens: list[Any]) -> None:
    in_raw = False
    for i, tok in enumerate(tokens):
        if not isinstance(tok, Delimited):
            continue
        if not in_raw and tok.trim_left and i > 0 and isinstance(tokens[i - 1], Html):
            prev = tokens[i - 1]
            while prev.end - 1 - prev.trim_right >= 0 and char_type(text[prev.end - 1 - prev.trim_right]) & BLANK:
                prev.trim_right += 1
        if tok.kind == "tag" and tok.name in ("raw", "endraw"):
            in_raw = tok.name == "raw"
        if not in_raw and tok.trim_right and i + 1 < len(tokens) and isinstance(tokens[i + 1], Html):
            nxt = tokens[i + 1]
            while nxt.begin + nxt.trim_left < len(text) and char_type(text[nxt.begin + nxt.trim_left]) & BLANK:
                nxt.trim_left += 1


def lex_template(text: str) -> list[Any]:
    tokens = _Lexer(text).tokens()
    _whitespace_control(text, tokens)
    return tokens
