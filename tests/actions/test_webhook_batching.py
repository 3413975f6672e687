"""The webhook action's "Enable Batching" (a subscription's ``enable_batching``): on, every request
carries a JSON array, even of one event (Segment's performBatch); off, one request per event whose
body is the event itself (perform)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from sgbridge.actions.runner import ActionRunner, check_subscription
from sgbridge.settings import SubscriptionSettings

pytestmark = pytest.mark.anyio

MAPPING = {"url": "https://hooks.example.com/in", "method": "POST", "data": {"@path": "$."}}


async def _bodies(enable_batching: bool, events: list[dict[str, Any]]) -> list[Any]:
    received: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:  # the user's endpoint
        received.append(json.loads(request.content))
        return httpx.Response(200, json={})

    subscribed = check_subscription("s", "webhook", "send", MAPPING, "all", enable_batching=enable_batching)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        runner = ActionRunner("webhook", {}, [subscribed], client)
        results = await runner.run([runner.plan(i, e) for i, e in enumerate(events)])
    assert [r.kind for r in results] == ["delivered"] * len(events), results
    return received


@pytest.mark.parametrize("count", [1, 3])
async def test_batching_on_sends_an_array_even_of_one(count: int) -> None:
    events = [{"type": "track", "event": "E", "messageId": f"m{i}"} for i in range(count)]
    bodies = await _bodies(True, events)
    assert len(bodies) == 1 and isinstance(bodies[0], list)
    assert [e["messageId"] for e in bodies[0]] == [f"m{i}" for i in range(count)]


async def test_batching_off_sends_each_event_alone_as_an_object() -> None:
    events = [{"type": "track", "event": "E", "messageId": f"m{i}"} for i in range(3)]
    bodies = await _bodies(False, events)
    assert sorted(b["messageId"] for b in bodies) == ["m0", "m1", "m2"]
    assert all(isinstance(b, dict) for b in bodies)


def test_the_setting_defaults_to_on() -> None:
    assert SubscriptionSettings(action="send").enable_batching is True
