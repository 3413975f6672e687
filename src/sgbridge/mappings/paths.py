"""Segment's two little path readers: actions-core's `get` and destination-subscriptions' `get`.

Neither is JSONPath. actions-core splits `a.b[0]['c']` on dots and on brackets that hold a quote or
a digit, strips every quote, and walks with `prev && prev[key]`: so a falsy value on the way (0,
'', false, null) is returned as it is instead of `undefined`, and `"abc".length` or `arr.0` work.
"""

from __future__ import annotations

import re
from functools import reduce
from typing import Any, Final

from ._js import UNDEFINED, get_prop, truthy

# actions-core get.ts: /\[(?="|'|\d)|\.|(?<="|'|\d)]+/g  (\d is ASCII-only in JavaScript)
_SPLIT_RE: Final = re.compile(r"""\[(?=["'0-9])|\.|(?<=["'0-9])\]+""")
_QUOTES_RE: Final = re.compile(r"""['"]""")
# destination-subscriptions get.ts: /([^[.\]])+/g
_SEGMENT_RE: Final = re.compile(r"[^\[.\]]+")


def _step(prev: Any, key: str) -> Any:
    # `prevObj && prevObj[key]`
    return get_prop(prev, key) if truthy(prev) else prev


def get(obj: Any, path: str) -> Any:
    """actions-core `get(obj, path)` (used by @path, @arrayPath and @template)."""
    if path in ("", "."):
        return obj
    keys = [_QUOTES_RE.sub("", s) for s in _SPLIT_RE.split(path) if s]
    return reduce(_step, keys, obj)


def fql_get(obj: Any, path: str) -> Any:
    """destination-subscriptions `get(object, path)`; raises TypeError where the JavaScript would throw."""
    if not path:
        return UNDEFINED
    keys = _SEGMENT_RE.findall(path)
    if not keys:
        # `path.match(...)` returned null and `.reduce` on it throws.
        raise TypeError("Cannot read properties of null (reading 'reduce')")
    return reduce(_step, keys, obj)
