"""liquidjs's string, HTML, URL, base64 and hash filters (ported from liquidjs 10)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote

from ._js import JS_WHITESPACE, UNDEFINED, js_trim, to_number, to_string, truthy, utf16_len, utf16_units
from .liquid_eval import is_nil, liquid_stringify, to_value
from .liquid_tokens import LiquidError

_WS: Final = f"[{re.escape(JS_WHITESPACE)}]+"
_ESCAPE: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"}


def _s(v: Any) -> str:
    return liquid_stringify(v)


def _d(v: Any, default: Any) -> Any:
    """A JavaScript default parameter: it also replaces an explicit undefined."""
    return default if v is UNDEFINED else v


def _js_max(*xs: float) -> float:
    return math.nan if any(math.isnan(x) for x in xs) else max(xs, default=-math.inf)


def _to_array(v: Any) -> list[Any]:
    v = to_value(v)
    return [] if is_nil(v) else v if isinstance(v, list) else [v]


def _join(v: Any, sep: Any = UNDEFINED) -> str:
    sep = to_value(sep)
    return (" " if is_nil(sep) else _s(sep)).join("" if is_nil(x) else to_string(x) for x in _to_array(v))


def _split(v: Any, sep: Any = UNDEFINED) -> list[str]:
    s, d = _s(v), _s(sep)
    parts = utf16_units(s) if d == "" else s.split(d)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _steps(n: float) -> int:
    """How many times `for (i = 0; i < n; i++)` runs."""
    return 0 if math.isnan(n) or n <= 0 else 10**9 if math.isinf(n) else math.ceil(n)


def _truncate(v: Any, length: Any = 50, ellipsis: Any = "...") -> Any:
    s, o = _s(v), _s(_d(ellipsis, "..."))
    n = to_number(to_value(_d(length, 50)))
    cps = list(s)
    if utf16_len(s) <= n or _steps(n) >= len(cps):
        return v
    return "".join(cps[:_steps(_js_max(n - len(o), 0))]) + o


def _truncatewords(v: Any, words: Any = 15, ellipsis: Any = "...") -> str:
    s, o = _s(v), _s(_d(ellipsis, "..."))
    arr = re.split(_WS, s.lstrip(JS_WHITESPACE))
    n = to_number(to_value(_d(words, 15)))
    if n <= 0:
        n = 1
    count = 0 if math.isnan(n) else len(arr) if math.isinf(n) else int(n)
    ret = " ".join(arr[:count])
    if len(arr) >= n:
        ret += o
    return ret


def _strip_chars(how: str) -> Callable[..., str]:
    def run(v: Any, chars: Any = UNDEFINED) -> str:
        s = _s(v)
        if not truthy(chars):
            return {"both": js_trim(s), "left": s.lstrip(JS_WHITESPACE), "right": s.rstrip(JS_WHITESPACE)}[how]
        cs = _s(chars)
        return {"both": s.strip(cs), "left": s.lstrip(cs), "right": s.rstrip(cs)}[how]
    return run


def _replace_last(v: Any, pattern: Any, replacement: Any = UNDEFINED) -> str:
    s, p, r = _s(v), _s(pattern), _s(replacement)
    i = s.rfind(p)
    return s if i < 0 else s[:i] + r + s[i + len(p):]


def _strip_html(v: Any) -> str:
    s = _s(v)
    blocks = {"<script": "</script>", "<style": "</style>", "<!--": "-->", "<": ">"}
    out, i = "", 0
    while i < len(s):
        lt = s.find("<", i)
        if lt < 0:
            return out + s[i:]
        out += s[i:lt]
        for opener, closer in list(blocks.items()):
            if not s.startswith(opener, lt):
                continue
            e = s.find(closer, lt + len(opener))
            if e >= 0:
                i = e + len(closer)
                break
            del blocks[opener]
        if i <= lt:
            return out + s[lt:]
    return out


def _escape(v: Any) -> str:
    return re.sub(r"""[&<>"']""", lambda m: _ESCAPE[m.group(0)], _s(v))


def _unescape(v: Any) -> str:
    inverse = {b: a for a, b in _ESCAPE.items()}
    return re.sub(r"&(amp|lt|gt|#34|#39);", lambda m: inverse[m.group(0)], _s(v))


def _url_decode(v: Any) -> str:
    """decodeURIComponent after `+` → space; a stray `%` or bad UTF-8 is a URIError."""
    s = _s(v).replace("+", " ")
    if "%" in re.sub(r"%[0-9a-fA-F]{2}", "", s):
        raise LiquidError("@liquid: URI malformed")
    try:
        return re.sub(r"(?:%[0-9a-fA-F]{2})+", lambda m: bytes.fromhex(m.group(0).replace("%", "")).decode(), s)
    except UnicodeDecodeError:
        raise LiquidError("@liquid: URI malformed") from None


def _uri_bytes(s: str) -> bytes:
    if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        raise LiquidError("@liquid: URI malformed")
    return s.encode()


def _encode_component(v: Any) -> str:
    return quote(_uri_bytes(_s(v)), safe="-_.!~*'()")


def _base64_decode(v: Any) -> str:
    s = _s(v)
    t = re.sub(r"[\t\n\f\r ]", "", s)
    if len(t) % 4 == 0:
        t = re.sub(r"==?$", "", t)
    if len(t) % 4 == 1 or not re.fullmatch(r"[A-Za-z0-9+/]*", t):
        raise LiquidError("@liquid: invalid base64 provided to base64_decode")
    return base64.b64decode(t + "=" * (-len(t) % 4)).decode("utf-8", "replace")


def _two_args(name: str, fn: Callable[[str, str], str]) -> Callable[..., str]:
    def run(*args: Any) -> str:
        if len(args) != 2:
            raise LiquidError(f"@liquid: {name} expect 2 arguments")
        return fn(_s(args[0]), _s(args[1]))
    return run


def _capitalize(v: Any) -> str:
    units = utf16_units(_s(v))
    if not units:
        return ""
    head = units[0].upper()
    return head + "".join(units[1:]).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass").lower()


def _split_all(s: str, sep: str) -> list[str]:
    return utf16_units(s) if sep == "" else s.split(sep)


def _utf8(s: str) -> bytes:
    # Buffer.from(str, 'utf8') turns lone surrogates into U+FFFD.
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode("utf-8")


STRING_FILTERS: Final[dict[str, Callable[..., Any]]] = {
    "escape": _escape, "xml_escape": _escape, "escape_once": lambda v: _escape(_unescape(v)),
    "strip_html": _strip_html,
    "url_encode": lambda v: _encode_component(v).replace("%20", "+"),
    "url_decode": _url_decode,
    "cgi_escape": lambda v: re.sub(r"[!'()*]", lambda m: f"%{ord(m.group(0)):X}",
                                   _encode_component(v).replace("%20", "+")),
    "uri_escape": lambda v: quote(_uri_bytes(_s(v)), safe="-_.!~*'();/?:@&=+$,#[]"),
    "join": _join, "split": _split,
    "append": _two_args("append", lambda a, b: a + b), "prepend": _two_args("prepend", lambda a, b: b + a),
    "lstrip": _strip_chars("left"), "rstrip": _strip_chars("right"), "strip": _strip_chars("both"),
    "downcase": lambda v: _s(v).lower(), "upcase": lambda v: _s(v).upper(),
    "remove": lambda v, arg=UNDEFINED: "".join(_split_all(_s(v), _s(arg))),
    "remove_first": lambda v, arg=UNDEFINED: _s(v).replace(_s(arg), "", 1),
    "remove_last": lambda v, arg=UNDEFINED: _replace_last(v, arg, ""),
    "strip_newlines": lambda v: re.sub(r"\r?\n", "", _s(v)),
    "squish": lambda v: js_trim(re.sub(_WS, " ", _s(v))),
    "normalize_whitespace": lambda v: re.sub(_WS, " ", _s(v)),
    "capitalize": _capitalize,
    "replace": lambda v, p=UNDEFINED, r=UNDEFINED: _s(r).join(_split_all(_s(v), _s(p))),
    "replace_first": lambda v, p=UNDEFINED, r=UNDEFINED: _s(v).replace(_s(p), _s(r), 1),
    "replace_last": _replace_last,
    "truncate": _truncate, "truncatewords": _truncatewords,
    "base64_encode": lambda v: base64.b64encode(_utf8(_s(v))).decode("ascii"),
    "base64_decode": _base64_decode,
    "sha256": lambda v: hashlib.sha256(_utf8(_s(v))).hexdigest(),
    "hmac_sha256": lambda v, key=UNDEFINED: hmac.new(_utf8(_s(key)), _utf8(_s(v)), hashlib.sha256).hexdigest(),
}
