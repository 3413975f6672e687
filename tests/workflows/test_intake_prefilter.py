"""The intake skips a condition whose top-level ``and`` names another event without evaluating it:
it must answer exactly what Segment's validate answers, for any event."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sgbridge.destinations.workflows import _matches
from sgbridge.mappings import SubscriptionError
from sgbridge.mappings.subscriptions import parse_subscription

CONDITIONS = [
    'event = "Order Completed"',
    'type = "track" and event = "Order Completed"',
    'event = "Order Completed" or event = "Cart Abandoned"',
    'event = "5" and properties.total > 10',
    'event = 5',
    'event = ""',
    'event != "Order Completed"',
    'type = "identify"',
    'properties.plan = "pro" and event = "Cart Abandoned"',
    '(event = "Order Completed" and properties.x exists) or type = "page"',
    "all",
]
values = st.one_of(st.none(), st.booleans(), st.integers(-20, 20), st.sampled_from(
    ["Order Completed", "Cart Abandoned", "5", "", "pro", "track", "identify", "page"]))
events = st.fixed_dictionaries({}, optional={
    "type": values, "event": values, "properties": st.dictionaries(st.sampled_from(["total", "plan", "x"]), values)})


def _validate(text: str, event: dict[str, Any]) -> bool:
    try:
        return parse_subscription(text).matches(event)
    except SubscriptionError:
        return False


@settings(max_examples=300, deadline=None)
@given(event=events, text=st.sampled_from(CONDITIONS))
def test_the_prefilter_answers_as_validate(event: dict[str, Any], text: str) -> None:
    assert _matches(parse_subscription(text), event) == _validate(text, event)
