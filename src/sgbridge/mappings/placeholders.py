"""Port of mapping-kit placeholders.ts: the `{{a.b}}` / `{{{a.b}}}` renderer behind @template."""

from __future__ import annotations

import re
from typing import Any, Final

from ._js import UNDEFINED, js_trim, repair_surrogates, to_string
from .paths import get

_TRIPLE: Final = re.compile(r"\{\{\{([^}]+)\}\}\}")
_DOUBLE: Final = re.compile(r"\{\{([^}]+)\}\}")


def render(template: str, data: Any = UNDEFINED) -> str:
    """Replace each placeholder by `String(get(data, path) ?? '')`; no escaping, no sections.

    Triple braces are replaced first and the result is scanned again for double braces, exactly as
    the two chained `String.replace` calls of the original do.
    """
    if data is UNDEFINED:
        data = {}

    def replacer(chars: int) -> Any:
        def run(m: re.Match[str]) -> str:
            value = get(data, js_trim(m.group(0)[chars:-chars]))
            return "" if value is UNDEFINED or value is None else to_string(value)

        return run

    return repair_surrogates(_DOUBLE.sub(replacer(2), repair_surrogates(_TRIPLE.sub(replacer(3), template))))
