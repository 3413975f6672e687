"""Cheap properties of the ports that the golden vectors cannot enumerate."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sgbridge.mappings import UNDEFINED, SubscriptionError, apply_mapping
from sgbridge.mappings._js import json_stringify, number_to_string
from sgbridge.mappings.subscriptions import parse_subscription

keys = st.text(alphabet="abcxyz_0123", min_size=1, max_size=4)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_json_encode_round_trips(value: Any) -> None:
    # @json encode is JSON.stringify: whatever it writes parses back to the same data.
    out = apply_mapping({"v": {"@json": {"mode": "encode", "value": {"@path": "$.x"}}}}, {"x": value})
    # Integers past 2**53 are printed the way JavaScript prints the double, so read them back as doubles.
    assert json.loads(out["v"], parse_int=lambda t: int(t) if abs(int(t)) <= 2**53 else float(t)) == value


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, json_values, max_size=5))
def test_literal_objects_pass_through(obj: dict[str, Any]) -> None:
    # Plain data without directives maps to itself.
    assert apply_mapping({"o": obj}, {}) == {"o": obj}


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_to_string_round_trips(x: float) -> None:
    s = number_to_string(x)
    assert float(s) == x or (x == 0 and float(s) == 0)
    assert not s.endswith(".0")
    if math.isfinite(x) and x == int(x) and abs(x) < 1e21:
        assert "e" not in s and "." not in s


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='type=event"an dor()!.,<>\\xprpoeisc1-\'', max_size=30))
def test_subscription_parser_never_crashes(text: str) -> None:
    # Any input either parses or raises SubscriptionError; a parsed trigger evaluates to a bool or
    # raises SubscriptionError exactly where Segment's validate throws.
    try:
        sub = parse_subscription(text)
    except SubscriptionError:
        return
    with contextlib.suppress(SubscriptionError):
        assert sub.matches({"type": "track", "event": "x", "properties": {"x": 1}}) in (True, False)


def test_json_stringify_undefined() -> None:
    assert json_stringify(UNDEFINED) is UNDEFINED
    assert json_stringify([UNDEFINED, 1]) == "[null,1]"
