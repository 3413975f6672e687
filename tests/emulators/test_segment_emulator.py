"""The Segment emulator must be as strict as Segment's Tracking API (segment-api.md §2)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from sgbridge.emulators.segment import create_segment_emulator, serve_segment_emulator

pytestmark = pytest.mark.anyio

KB = 1024


def basic(key: str, password: str = "") -> dict[str, str]:
    token = base64.b64encode(f"{key}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def track(n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Email Opened", "anonymousId": f"anon-{n}", "messageId": f"m-{n}", **extra}


def sized(item: dict[str, Any], size: int) -> dict[str, Any]:
    """Pad ``item`` so that its compact JSON is exactly ``size`` bytes."""
    padded = {**item, "properties": {"pad": ""}}
    padded["properties"]["pad"] = "x" * (size - len(orjson.dumps(padded)))
    assert len(orjson.dumps(padded)) == size
    return padded


@pytest.fixture
def app() -> Starlette:
    return create_segment_emulator(write_keys=["wk", "wk2"])


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://segment") as c:
        yield c


async def post_batch(client: httpx.AsyncClient, items: list[Any], key: str = "wk", **top: Any) -> httpx.Response:
    return await client.post("/v1/batch", content=orjson.dumps({"batch": items, **top}), headers=basic(key))


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/_emulator/stats")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


# -- auth ------------------------------------------------------------------------------------


async def test_basic_auth_and_body_write_key_are_both_accepted(client: httpx.AsyncClient) -> None:
    r1 = await client.post("/v1/track", json=track(1), headers={"Authorization": "Basic d2s6"})  # "wk:"
    r2 = await client.post("/v1/track", json={**track(2), "writeKey": "wk2"})
    assert (r1.status_code, r1.json()) == (200, {"success": True})
    assert (r2.status_code, r2.json()) == (200, {"success": True})
    messages = (await client.get("/_emulator/messages")).json()["messages"]
    assert [(m["messageId"], m["writeKey"]) for m in messages] == [("m-1", "wk"), ("m-2", "wk2")]


@pytest.mark.parametrize(
    "headers,body_key",
    [({}, None), (basic("nope"), None), ({}, "nope"), ({"Authorization": "Basic !!notbase64"}, None)],
)
async def test_missing_or_unknown_write_key_is_401(
    client: httpx.AsyncClient, headers: dict[str, str], body_key: str | None
) -> None:
    body = track(1) if body_key is None else {**track(1), "writeKey": body_key}
    response = await client.post("/v1/track", json=body, headers=headers)
    assert response.status_code == 401
    assert "error" in response.json()
    assert (await stats(client))["accepted"] == 0


async def test_any_non_empty_key_when_no_keys_configured() -> None:
    app = create_segment_emulator()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        assert (await c.post("/v1/track", json=track(1), headers=basic("whatever"))).status_code == 200
        assert (await c.post("/v1/track", json=track(2), headers=basic(""))).status_code == 401
    assert app.state.emulator.state.accepted == 1


# -- batch semantics ---------------------------------------------------------------------------


async def test_batch_merges_top_level_context_and_integrations(client: httpx.AsyncClient) -> None:
    items = [
        track(1, context={"ip": "1.2.3.4", "library": {"name": "mine"}}),
        track(2, integrations={"Mixpanel": True}),
    ]
    response = await post_batch(
        client,
        items,
        context={"library": {"name": "sgbridge"}, "traits": {"email": "a@example.com"}},
        integrations={"All": False},
        sentAt="2024-01-08T13:52:51.000Z",
    )
    assert response.status_code == 200
    first, second = (await client.get("/_emulator/messages")).json()["messages"]
    assert first["context"] == {"ip": "1.2.3.4", "library": {"name": "mine"}, "traits": {"email": "a@example.com"}}
    assert first["integrations"] == {"All": False}
    assert second["context"] == {"library": {"name": "sgbridge"}, "traits": {"email": "a@example.com"}}
    assert second["integrations"] == {"All": False, "Mixpanel": True}
    assert second["sentAt"] == "2024-01-08T13:52:51.000Z"
    assert second["receivedAt"].endswith("Z")


async def test_invalid_items_get_200_but_are_rejected_with_reasons(client: httpx.AsyncClient) -> None:
    items = [
        track(1),
        {"event": "No Type", "userId": "u"},
        {"type": "track", "userId": "u", "messageId": "no-event"},
        {"type": "track", "event": "No Ids"},
        {"type": "identify", "anonymousId": ""},
        {"type": "teleport", "userId": "u"},
        {"type": "group", "userId": "u"},
        {"type": "alias", "userId": "u"},
        "not an object",
        track(2, messageId="x" * 101),
        {"type": "identify", "userId": 42},
    ]
    response = await post_batch(client, items)
    assert (response.status_code, response.json()) == (200, {"success": True})
    s = await stats(client)
    assert s["accepted"] == 2
    assert s["rejected"] == 9
    assert s["rejected_reasons"] == {
        "missing_type": 1,
        "missing_event": 1,
        "no_user_anon_id": 2,
        "invalid_type": 1,
        "missing_group_id": 1,
        "missing_previous_id": 1,
        "invalid_event": 1,
        "message_id_too_long": 1,
    }
    rejections = (await client.get("/_emulator/rejections")).json()["rejections"]
    assert {"reason": "missing_event", "writeKey": "wk", "type": "track", "userId": "u", "messageId": "no-event"} in (
        rejections
    )


async def test_events_past_2500_are_rejected_while_the_batch_succeeds(client: httpx.AsyncClient) -> None:
    response = await post_batch(client, [track(i) for i in range(2503)])
    assert response.status_code == 200
    s = await stats(client)
    assert (s["accepted"], s["rejected"], s["rejected_reasons"]) == (2500, 3, {"batch_limit_exceeded": 3})
    page = (await client.get("/_emulator/messages", params={"offset": 2499, "limit": 10})).json()
    assert page["total"] == 2500
    assert [m["messageId"] for m in page["messages"]] == ["m-2499"]


async def test_event_over_32kb_in_a_batch_is_rejected_alone(client: httpx.AsyncClient) -> None:
    response = await post_batch(client, [sized(track(1), 32 * KB), sized(track(2), 32 * KB + 1), track(3)])
    assert response.status_code == 200
    ids = [m["messageId"] for m in (await client.get("/_emulator/messages")).json()["messages"]]
    assert ids == ["m-1", "m-3"]
    assert (await stats(client))["rejected_reasons"] == {"event_too_large": 1}


async def test_batch_body_limit_is_500kb(client: httpx.AsyncClient) -> None:
    def body_of(size: int) -> bytes:
        payload: dict[str, Any] = {"batch": [track(1)], "context": {"pad": ""}}
        payload["context"]["pad"] = "y" * (size - len(orjson.dumps(payload)))
        raw = orjson.dumps(payload)
        assert len(raw) == size
        return raw

    ok = await client.post("/v1/batch", content=body_of(500 * KB), headers=basic("wk"))
    too_big = await client.post("/v1/batch", content=body_of(500 * KB + 1), headers=basic("wk"))
    assert ok.status_code == 200
    assert too_big.status_code == 400
    assert "error" in too_big.json()
    assert (await stats(client))["accepted"] == 1


async def test_single_call_limit_is_32kb_and_type_comes_from_the_endpoint(client: httpx.AsyncClient) -> None:
    at_limit = sized({"event": "E", "userId": "u", "messageId": "a", "type": "identify"}, 32 * KB)
    over = sized({"event": "E", "userId": "u", "messageId": "b"}, 32 * KB + 1)
    assert (await client.post("/v1/track", content=orjson.dumps(at_limit), headers=basic("wk"))).status_code == 200
    assert (await client.post("/v1/track", content=orjson.dumps(over), headers=basic("wk"))).status_code == 400
    (message,) = (await client.get("/_emulator/messages")).json()["messages"]
    assert message["type"] == "track"


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/identify"])
async def test_invalid_json_is_400(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, content=b'{"batch": [', headers=basic("wk"))
    assert response.status_code == 400
    assert "error" in response.json()


async def test_batch_must_be_an_array(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/batch", json={"batch": {}}, headers=basic("wk"))).status_code == 400
    assert (await client.post("/v1/batch", json=[track(1)], headers=basic("wk"))).status_code == 400


async def test_gzip_bodies_are_accepted_and_limits_apply_after_decompression(client: httpx.AsyncClient) -> None:
    headers = {**basic("wk"), "Content-Encoding": "gzip"}
    good = gzip.compress(orjson.dumps({"batch": [track(1), track(2)]}))
    huge = gzip.compress(orjson.dumps({"batch": [track(3)], "context": {"pad": "z" * (600 * KB)}}))
    assert len(huge) < 10 * KB
    assert (await client.post("/v1/batch", content=good, headers=headers)).status_code == 200
    assert (await client.post("/v1/batch", content=huge, headers=headers)).status_code == 400
    assert (await client.post("/v1/batch", content=b"not gzip", headers=headers)).status_code == 400
    assert (await stats(client))["accepted"] == 2


# -- dedupe and records ----------------------------------------------------------------------


async def test_message_id_dedupe_is_global_across_write_keys(client: httpx.AsyncClient) -> None:
    await post_batch(client, [track(1), track(2)], key="wk")
    await post_batch(client, [track(2, event="Changed"), track(3)], key="wk2")
    await client.post("/v1/track", json=track(1), headers=basic("wk2"))
    s = await stats(client)
    assert (s["accepted"], s["duplicates"], s["unique_message_ids"]) == (3, 2, 3)
    messages = (await client.get("/_emulator/messages")).json()["messages"]
    assert [(m["messageId"], m["event"], m["writeKey"]) for m in messages] == [
        ("m-1", "Email Opened", "wk"),
        ("m-2", "Email Opened", "wk"),
        ("m-3", "Email Opened", "wk2"),
    ]


async def test_messages_without_message_id_get_distinct_ids(client: httpx.AsyncClient) -> None:
    item = {"type": "track", "event": "E", "userId": "u"}
    await post_batch(client, [item, item])
    messages = (await client.get("/_emulator/messages")).json()["messages"]
    assert len(messages) == 2
    assert messages[0]["messageId"] != messages[1]["messageId"]
    assert all(m["messageId"] for m in messages)


async def test_message_query_filters_paginates_and_resets(client: httpx.AsyncClient) -> None:
    await post_batch(client, [track(i, event="Email Opened" if i % 3 else "Email Delivered") for i in range(10)])
    opened = (await client.get("/_emulator/messages", params={"event": "Email Opened", "limit": 2})).json()
    assert opened["total"] == 6
    assert [m["messageId"] for m in opened["messages"]] == ["m-1", "m-2"]
    delivered = (await client.get("/_emulator/messages", params={"event": "Email Delivered", "offset": 3})).json()
    assert (delivered["total"], [m["messageId"] for m in delivered["messages"]]) == (4, ["m-9"])
    assert (await client.get("/_emulator/messages", params={"limit": "x"})).status_code == 400
    assert (await client.delete("/_emulator/messages")).status_code == 200
    s = await stats(client)
    assert (s["accepted"], s["requests"], s["unique_message_ids"]) == (0, 0, 0)
    # After a reset an id seen before is new again.
    await post_batch(client, [track(1)])
    assert (await stats(client))["accepted"] == 1


async def test_keep_messages_false_still_counts_and_dedupes() -> None:
    app = create_segment_emulator(keep_messages=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        await post_batch(c, [track(1), track(2), track(1)])
        assert (await c.get("/_emulator/messages")).json() == {"messages": [], "total": 0}
        s = await stats(c)
    assert (s["accepted"], s["duplicates"], s["unique_message_ids"]) == (2, 1, 2)
    assert app.state.emulator.state.stored_messages == 0


async def test_state_is_inspectable_in_process(app: Starlette, client: httpx.AsyncClient) -> None:
    await post_batch(client, [track(1, userId="u1")])
    state = app.state.emulator.state
    assert state.accepted == 1
    assert "m-1" in state.seen_message_ids
    (message,) = state.messages(event="Email Opened")
    assert message["userId"] == "u1"
    assert state.messages(write_key="wk2") == []


# -- faults --------------------------------------------------------------------------------------


async def test_429_fault_with_retry_headers_then_recovery(client: httpx.AsyncClient) -> None:
    r = await client.post("/_emulator/faults", json={"status": 429, "count": 2, "retry_after": 2})
    assert r.status_code == 200
    assert r.json()["faults"][0]["remaining"] == 2
    first = await post_batch(client, [track(1)])
    second = await post_batch(client, [track(1)])
    third = await post_batch(client, [track(1)])
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers["Retry-After"] == "2"
    assert first.headers["X-RateLimit-Reset"] == "2"
    s = await stats(client)
    # Faulted requests record nothing: the retried id is accepted, not a duplicate.
    assert (s["accepted"], s["duplicates"], s["requests"], s["faults_injected"]) == (1, 0, 1, 2)
    assert (await client.get("/_emulator/faults")).json()["faults"] == []


async def test_503_fault_does_not_affect_control_endpoints(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/faults", json={"status": 503, "count": 3})
    assert (await client.get("/_emulator/stats")).status_code == 200
    assert (await client.get("/_emulator/messages")).status_code == 200
    codes = [(await client.post("/v1/track", json=track(i), headers=basic("wk"))).status_code for i in range(4)]
    assert codes == [503, 503, 503, 200]
    assert (await stats(client))["accepted"] == 1


async def test_delay_fault_slows_the_response_then_handles_it(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/faults", json={"delay": 0.3, "count": 1})
    started = time.monotonic()
    slow = await post_batch(client, [track(1)])
    slow_elapsed = time.monotonic() - started
    started = time.monotonic()
    fast = await post_batch(client, [track(2)])
    fast_elapsed = time.monotonic() - started
    assert (slow.status_code, fast.status_code) == (200, 200)
    assert slow_elapsed >= 0.3
    assert fast_elapsed < 0.3
    assert (await stats(client))["accepted"] == 2


async def test_probabilistic_fault_for_a_period() -> None:
    app = create_segment_emulator(fault_seed=42)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        await c.post("/_emulator/faults", json={"status": 500, "probability": 0.3, "duration": 0.5})
        codes = [(await c.post("/v1/track", json=track(i), headers=basic("k"))).status_code for i in range(200)]
        assert set(codes) == {200, 500}
        assert 30 <= codes.count(500) <= 90
        await asyncio.sleep(0.5)
        after = [(await c.post("/v1/track", json=track(1000 + i), headers=basic("k"))).status_code for i in range(20)]
        assert after == [200] * 20
        assert (await stats(c))["accepted"] == codes.count(200) + 20


async def test_fault_validation_listing_and_clearing(client: httpx.AsyncClient) -> None:
    for bad in ({"status": 200}, {"count": 2}, {"status": 500, "bogus": 1}, {"delay": True}, {"drop": 1}):
        assert (await client.post("/_emulator/faults", json=bad)).status_code == 400, bad
    rules = [{"status": 500, "count": 1, "path": "/v1/track"}, {"delay": 0.01, "count": 1}]
    assert len((await client.post("/_emulator/faults", json=rules)).json()["faults"]) == 2
    # /v1/batch is outside the first rule's path, so only the delay rule fires (and is used up).
    assert (await post_batch(client, [track(1)])).status_code == 200
    (left,) = (await client.get("/_emulator/faults")).json()["faults"]
    assert (left["status"], left["path"], left["remaining"]) == (500, "/v1/track", 1)
    assert (await client.delete("/_emulator/faults")).json()["faults"] == []
    assert (await client.post("/v1/track", json=track(2), headers=basic("wk"))).status_code == 200


async def test_process_flag_records_then_fails_the_response(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/faults", json={"status": 502, "process": True})
    assert (await post_batch(client, [track(1)])).status_code == 502
    assert (await post_batch(client, [track(1)])).status_code == 200
    s = await stats(client)
    assert (s["accepted"], s["duplicates"]) == (1, 1)


async def test_drop_fault_in_process_looks_like_a_transport_error(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/faults", json={"drop": True, "count": 1})
    with pytest.raises(httpx.TransportError):
        await post_batch(client, [track(1)])
    assert (await post_batch(client, [track(1)])).status_code == 200
    assert (await stats(client))["accepted"] == 1


async def test_drop_fault_over_a_real_socket(live_segment: tuple[Starlette, str]) -> None:
    app, url = live_segment
    async with httpx.AsyncClient(base_url=url) as c:
        await c.post("/_emulator/faults", json={"drop": True, "count": 2})
        for _ in range(2):
            with pytest.raises(httpx.TransportError):
                await c.post("/v1/batch", json={"batch": [track(1)]}, headers=basic("live"))
        ok = await c.post("/v1/batch", json={"batch": [track(1)]}, headers=basic("live"))
        assert (ok.status_code, ok.json()) == (200, {"success": True})
        s = await stats(c)
    assert (s["accepted"], s["requests"], s["faults_injected"]) == (1, 1, 2)
    assert app.state.emulator.state.messages()[0]["writeKey"] == "live"


async def test_serve_segment_emulator_runs_until_cancelled() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = asyncio.create_task(serve_segment_emulator("127.0.0.1", port, ["cli-key"], log_level="warning"))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            for _ in range(200):
                try:
                    response = await c.post("/v1/track", json={**track(1), "writeKey": "cli-key"})
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.02)
            assert response.status_code == 200
            assert (await c.post("/v1/track", json={**track(2), "writeKey": "other"})).status_code == 401
            assert (await stats(c))["accepted"] == 1
    finally:
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server
