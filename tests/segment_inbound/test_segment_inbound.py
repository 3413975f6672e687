"""Segment events in: the Webhooks destination (X-Signature) and the Tracking API (write keys)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from sgbridge.inbound.segment import API_SOURCE, WEBHOOK_SOURCE, verify_webhook_signature
from tests.conftest import BridgeFactory

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "peers" / "segment-action-destinations"
SECRET = "webhook-secret"
KEY = "inbound-write-key"
ENV = {"SEGMENT_WEBHOOK_SHARED_SECRET": SECRET, "SGBRIDGE_INBOUND_WRITE_KEYS": f"{KEY},second-key"}


def _event(n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": f"user-{n}", "messageId": f"msg-{n}",
            "traits": {"email": f"user{n}@example.com"}, **extra}


def _sign(data: bytes) -> str:
    return hmac.new(SECRET.encode(), data, hashlib.sha1).hexdigest()


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _stored(h: Any) -> list[tuple[str, str, dict[str, Any]]]:
    def job(conn: Any) -> list[tuple[str, str, dict[str, Any]]]:
        rows = conn.execute("SELECT source, event_type, body FROM events ORDER BY seq").fetchall()
        return [(r[0], r[1], orjson.loads(bytes(r[2]))) for r in rows]

    return list(h.bridge.journal.run_sync(job))


def test_x_signature_vector_from_segments_webhook_tests() -> None:
    case = json.loads((FIXTURES / "webhook" / "x-signature-single.json").read_text())
    request = case["expected_requests"][0]
    body = request["body_raw"].encode()
    signature = request["headers"]["X-Signature"]
    assert verify_webhook_signature(case["settings"]["sharedSecret"], body, signature)
    assert not verify_webhook_signature("another-secret", body, signature)
    assert not verify_webhook_signature(case["settings"]["sharedSecret"], body + b" ", signature)


async def test_signed_single_event_is_stored(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(**ENV) as h:
        body = orjson.dumps(_event(1))
        r = await h.client.post("/webhooks/segment", content=body, headers={"X-Signature": _sign(body)})
        assert r.status_code == 200, r.text
        assert r.json()["stored"] == 1
        [(source, kind, event)] = _stored(h)
        assert (source, kind, event["userId"], event["messageId"]) == (WEBHOOK_SOURCE, "identify", "user-1", "msg-1")
        assert event["receivedAt"].endswith("Z")


async def test_batch_mode_checks_the_first_events_bytes_as_received(bridge_factory: BridgeFactory) -> None:
    # Segment signs JSON.stringify(payload[0].data) only; our body spacing differs from any
    # re-serialisation on purpose, so only a check over the raw slice passes.
    first = b'{ "type":"track", "event":"Order Completed", "userId":"u1", "messageId":"b-1" }'
    body = b"[" + first + b",\n" + orjson.dumps(_event(2)) + b"]"
    async with bridge_factory(**ENV, SGBRIDGE_SEGMENT_INBOUND__ACCEPT_UNSIGNED_BATCH_ELEMENTS="true") as h:
        r = await h.client.post("/webhooks/segment", content=body, headers={"X-Signature": _sign(first)})
        assert r.status_code == 200, r.text
        assert [e["messageId"] for _, _, e in _stored(h)] == ["b-1", "msg-2"]
        whole = await h.client.post("/webhooks/segment", content=body, headers={"X-Signature": _sign(body)})
        assert whole.status_code == 401
        deep = b'[{"a": ' + b'[' * 5000 + b"]" * 5000 + b"}]"  # too deep to find the first event: refused, not a 500
        refused = await h.client.post("/webhooks/segment", content=deep, headers={"X-Signature": _sign(deep)})
        assert refused.status_code == 401


@pytest.mark.parametrize("headers", [{}, {"X-Signature": "0" * 40}, {"X-Signature": "not hex"}])
async def test_bad_or_missing_signature_is_401_and_nothing_stored(bridge_factory: BridgeFactory,
                                                                  headers: dict[str, str]) -> None:
    async with bridge_factory(**ENV) as h:
        r = await h.client.post("/webhooks/segment", content=orjson.dumps(_event(1)), headers=headers)
        assert r.status_code == 401
        assert "X-Signature" in r.json()["error"]
        assert _stored(h) == []


async def test_webhook_without_a_configured_secret_refuses(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(SEGMENT_WEBHOOK_SHARED_SECRET=None) as h:
        body = orjson.dumps(_event(1))
        r = await h.client.post("/webhooks/segment", content=body, headers={"X-Signature": _sign(body)})
        assert r.status_code == 401
        assert "shared_secret" in r.json()["error"]


@pytest.mark.parametrize("auth", ["basic", "body"])
async def test_tracking_api_accepts_a_configured_write_key(bridge_factory: BridgeFactory, auth: str) -> None:
    async with bridge_factory(**ENV) as h:
        call = {"userId": "u9", "event": "Signed Up", "messageId": "t-1", "properties": {"plan": "pro"}}
        if auth == "body":
            r = await h.client.post("/v1/track", json={**call, "writeKey": "second-key"})
        else:
            r = await h.client.post("/v1/track", json=call, headers=_basic(KEY))
        assert r.status_code == 200, r.text
        assert r.json()["success"] is True
        [(source, kind, event)] = _stored(h)
        assert (source, kind, event["event"]) == (API_SOURCE, "track", "Signed Up")
        assert "writeKey" not in event  # a secret is never stored with the event


@pytest.mark.parametrize("headers", [{}, _basic("wrong-key"), {"Authorization": "Basic !!"}])
async def test_tracking_api_refuses_unknown_keys(bridge_factory: BridgeFactory, headers: dict[str, str]) -> None:
    async with bridge_factory(**ENV) as h:
        r = await h.client.post("/v1/identify", json=_event(1), headers=headers)
        assert r.status_code == 401
        bad_json = await h.client.post("/v1/identify", content=b"{oops", headers=headers)
        assert bad_json.status_code == 401  # an unauthenticated caller learns nothing about its body
        assert _stored(h) == []


async def test_batch_merges_context_and_refuses_bad_items_one_by_one(bridge_factory: BridgeFactory) -> None:
    batch = {"batch": [_event(1), {"type": "track", "userId": "u2", "messageId": "m2"},  # track without event
                       {"type": "identify", "messageId": "m3"},  # no user id at all
                       {**_event(4), "context": {"ip": "10.0.0.1"}}],
             "context": {"library": {"name": "test"}, "ip": "192.0.2.1"}}
    async with bridge_factory(**ENV) as h:
        r = await h.client.post("/v1/batch", json=batch, headers=_basic(KEY))
        assert r.status_code == 200
        reply = r.json()
        assert (reply["stored"], [x["index"] for x in reply["rejected"]]) == (2, [1, 2])
        assert "without an `event`" in reply["rejected"][0]["error"]
        events = {e["messageId"]: e for _, _, e in _stored(h)}
        assert events["msg-1"]["context"] == {"library": {"name": "test"}, "ip": "192.0.2.1"}
        assert events["msg-4"]["context"] == {"library": {"name": "test"}, "ip": "10.0.0.1"}


@pytest.mark.parametrize(("path", "body", "fragment"), [
    ("/v1/track", b"{not json", "not valid JSON"),
    ("/v1/track", b"[1, 2]", "JSON object"),
    ("/v1/batch", b'{"batch": 3}', "`batch` array"),
    ("/v1/track", orjson.dumps({"userId": "u", "event": "x", "properties": {"blob": "x" * 40_000}}), "32768"),
    ("/v1/page", orjson.dumps({"type": "nonsense", "userId": "u"}), "type 'nonsense'"),
    ("/v1/track", b'{"userId": "u", "event": "x", "properties": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001,
     "not valid JSON"),
])
async def test_bad_tracking_bodies_are_400_with_reason(bridge_factory: BridgeFactory, path: str, body: bytes,
                                                       fragment: str) -> None:
    async with bridge_factory(**ENV) as h:
        r = await h.client.post(path, content=body, headers=_basic(KEY))
        assert r.status_code == 400
        assert fragment in r.json()["error"]
        assert _stored(h) == []


async def test_message_id_dedupes_across_the_webhook_and_the_api(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(**ENV) as h:
        body = orjson.dumps(_event(5))
        first = await h.client.post("/webhooks/segment", content=body, headers={"X-Signature": _sign(body)})
        again = await h.client.post("/v1/identify", content=gzip.compress(body),
                                    headers={**_basic(KEY), "Content-Encoding": "gzip"})
        batch = await h.client.post("/v1/batch", json={"batch": [_event(5), _event(6)]}, headers=_basic(KEY))
        assert [r.json()["stored"] for r in (first, again, batch)] == [1, 0, 1]
        assert [r.json()["duplicates"] for r in (first, again, batch)] == [0, 1, 1]
        assert sorted(e["messageId"] for _, _, e in _stored(h)) == ["msg-5", "msg-6"]


async def test_segment_events_are_never_sent_back_to_segment(bridge_factory: BridgeFactory) -> None:
    from sgbridge.emulators.event_factory import EventFactory

    async with bridge_factory(**ENV) as h:
        await h.client.post("/v1/batch", json={"batch": [_event(i) for i in range(5)]}, headers=_basic(KEY))
        sendgrid_events = [e for e in EventFactory(4).batch(30) if e["event"] == "delivered"][:3]
        assert (await h.post(sendgrid_events)).status_code == 200
        await h.wait_delivered(len(sendgrid_events))
        await anyio.sleep(0.3)  # time enough for a wrong delivery to show up
        assert h.segment.accepted == len(sendgrid_events)


def test_official_segment_python_sdk_sends_straight_to_sgbridge(monkeypatch: pytest.MonkeyPatch,
                                                                sqlite_url: str) -> None:
    """segment-analytics-python, as a user would configure it, pointed at a running sgbridge."""
    from segment.analytics.client import Client

    from sgbridge.app import build_app
    from sgbridge.emulators.serving import serve_in_thread
    from sgbridge.settings import load_settings

    for name, value in {**ENV, "SGBRIDGE_DATABASE_URL": sqlite_url, "SEGMENT_WRITE_KEY": ""}.items():
        monkeypatch.setenv(name, value)
    app = build_app(load_settings())
    from segment.analytics.request import APIError

    with serve_in_thread(app) as url:
        client = Client(KEY, host=url, sync_mode=True)
        client.identify("sdk-user", {"email": "sdk@example.com", "plan": "pro"})
        client.track("sdk-user", "Order Completed", {"revenue": 42.5})
        client.group("sdk-user", "acme", {"name": "Acme"})
        client.flush()
        with pytest.raises(APIError) as refused:
            Client("not-a-key", host=url, sync_mode=True, max_retries=0).track("sdk-user", "Refused")
        stored = app.state.bridge.journal.run_sync(
            lambda conn: conn.execute("SELECT event_type, body FROM events ORDER BY seq").fetchall())
    events = [orjson.loads(bytes(body)) for _, body in stored]
    assert [e["type"] for e in events] == ["identify", "track", "group"]
    assert events[0]["traits"] == {"email": "sdk@example.com", "plan": "pro"}
    assert events[1]["properties"] == {"revenue": 42.5}
    assert all(e["context"]["library"]["name"] == "analytics-python" for e in events)
    assert refused.value.status == 401 and "write key" in refused.value.message
