"""Segment events in, against bad input: wrong JSON types, unreadable values, odd headers.

As Segment does, a batch is not refused for one bad event: the event is listed in `rejected` with
the reason and the rest is stored; a single call with such an event is a 400; a body that is not
Segment's shape at all is a 400. Each case here was a 500, or a stored event a consumer failed on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson
import pytest

from tests.conftest import BridgeFactory

pytestmark = pytest.mark.anyio

SECRET = "webhook-secret"
KEY = "inbound-write-key"
ENV = {"SEGMENT_WEBHOOK_SHARED_SECRET": SECRET, "SGBRIDGE_INBOUND_WRITE_KEYS": KEY,
       "SGBRIDGE_SEGMENT_INBOUND__ACCEPT_UNSIGNED_BATCH_ELEMENTS": "true"}
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
GOOD = b'{"type":"identify","userId":"u-good","messageId":"m-good","traits":{"plan":"pro"}}'


def _sign(data: bytes) -> str:
    return hmac.new(SECRET.encode(), data, hashlib.sha1).hexdigest()


def _stored(h: Any) -> list[dict[str, Any]]:
    rows = h.bridge.journal.run_sync(lambda conn: conn.execute("SELECT body FROM events ORDER BY seq").fetchall())
    return [orjson.loads(bytes(r[0])) for r in rows]


WRONG_TYPES = [
    ({"type": ["track"], "userId": "u", "event": "e"}, "type an array"),
    ({"type": {"a": 1}, "userId": "u"}, "type an object"),
    ({"type": 7, "userId": "u"}, "type a number"),
    ({"type": "track", "userId": "u", "event": "e", "context": []}, "`context` as an array"),
    ({"type": "track", "userId": "u", "event": "e", "context": "x"}, "`context` as a string"),
    ({"type": "identify", "userId": "u", "traits": [1]}, "`traits` as an array"),
    ({"type": "identify", "userId": "u", "traits": "s"}, "`traits` as a string"),
    ({"type": "track", "userId": "u", "event": "e", "properties": 3}, "`properties` as a number"),
    ({"type": "identify", "userId": "u", "integrations": True}, "`integrations` as a boolean"),
    ({"type": "identify", "userId": "u", "timestamp": {"a": 1}}, "`timestamp` as an object"),
    ({"type": "identify", "userId": "u", "timestamp": 1700000000}, "`timestamp` as a number"),
    ({"type": "identify", "userId": "u", "sentAt": []}, "`sentAt` as an array"),
    ({"type": "identify", "userId": ["u"]}, "`userId` as an array"),
    ({"type": "identify", "anonymousId": {"a": 1}}, "`anonymousId` as an object"),
    ({"type": "identify", "userId": "u", "messageId": "m\u0000"}, "NUL"),
    ({"type": "track", "userId": "u", "event": "e", "properties": {"x": [[[[[[[[]]]]]]]] * 1,
                                                                   "y": orjson.loads(b"[" * 80 + b"]" * 80)}},
     "nested more than 64"),
]


@pytest.mark.parametrize(("event", "fragment"), WRONG_TYPES)
async def test_wrong_json_types_are_refused_with_the_reason(bridge_factory: BridgeFactory, event: dict[str, Any],
                                                            fragment: str) -> None:
    body = orjson.dumps(event)
    async with bridge_factory(**ENV) as h:
        single = await h.client.post("/webhooks/segment", content=body, headers={"X-Signature": _sign(body)})
        call = await h.client.post("/v1/track", content=body, headers=BASIC)
        for response in (single, call):
            assert response.status_code == 400, response.text
            assert fragment in response.json()["error"]
        assert _stored(h) == []
        batch = b"[" + GOOD + b"," + body + b"]"
        in_batch = await h.client.post("/webhooks/segment", content=batch, headers={"X-Signature": _sign(GOOD)})
        api_batch = await h.client.post("/v1/batch", content=b'{"batch":[' + body + b"]}", headers=BASIC)
        for response, index in ((in_batch, 1), (api_batch, 0)):
            assert response.status_code == 200, response.text
            [rejected] = response.json()["rejected"]
            assert rejected["index"] == index and fragment in rejected["error"]
        assert [e["messageId"] for e in _stored(h)] == ["m-good"]


UNREADABLE = [
    (b'{"type":"track","userId":"u","event":"e","properties":{"x":1e400}}', "infinity"),
    (b'{"type":"track","userId":"u","event":"e","properties":{"x":"\xff\xfe"}}', "UTF-8"),
]


@pytest.mark.parametrize(("body", "fragment"), UNREADABLE)
async def test_an_unreadable_event_is_refused_alone_in_a_batch(bridge_factory: BridgeFactory, body: bytes,
                                                               fragment: str) -> None:
    async with bridge_factory(**ENV) as h:
        webhook = await h.client.post("/webhooks/segment", content=b"[" + GOOD + b"," + body + b"]",
                                      headers={"X-Signature": _sign(GOOD)})
        api = await h.client.post("/v1/batch", content=b'{"context":{"ip":"192.0.2.1"},"batch":[' + body + b","
                                  + GOOD.replace(b"m-good", b"m-good-2") + b"]}", headers=BASIC)
        assert (webhook.status_code, api.status_code) == (200, 200), (webhook.text, api.text)
        assert [r["index"] for r in webhook.json()["rejected"]] == [1]
        assert [r["index"] for r in api.json()["rejected"]] == [0]
        assert fragment in webhook.json()["rejected"][0]["error"]
        stored = _stored(h)
        assert [e["messageId"] for e in stored] == ["m-good", "m-good-2"]
        assert stored[1]["context"] == {"ip": "192.0.2.1"}  # the batch's context still applies
        single = await h.client.post("/v1/track", content=body, headers=BASIC)
        assert single.status_code == 400 and "not valid JSON" in single.json()["error"]


@pytest.mark.parametrize(("body", "fragment"), [
    (b'{"batch":[], "context":[1]}', "`context` is an array"),
    (b'{"batch":[], "integrations":"all"}', "`integrations` is a string"),
    (b'{"batch":[' + GOOD + b'], "context":{"x":1e400}}', "not valid JSON"),
])
async def test_a_batch_envelope_of_the_wrong_shape_is_400(bridge_factory: BridgeFactory, body: bytes,
                                                          fragment: str) -> None:
    async with bridge_factory(**ENV) as h:
        response = await h.client.post("/v1/batch", content=body, headers=BASIC)
        assert response.status_code == 400, response.text
        assert fragment in response.json()["error"]
        assert _stored(h) == []


async def test_ids_given_as_numbers_are_stored_as_strings(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(**ENV) as h:
        response = await h.client.post("/v1/identify", json={"userId": 42, "messageId": "n-1"}, headers=BASIC)
        assert response.status_code == 200, response.text
        assert _stored(h)[0]["userId"] == "42"


@pytest.mark.parametrize("value", ["é".encode(), b"\xff" * 40, "0" * 39 + "é"])
async def test_a_non_ascii_x_signature_is_401_not_500(bridge_factory: BridgeFactory, value: bytes | str) -> None:
    async with bridge_factory(**ENV) as h:
        raw = value.encode() if isinstance(value, str) else value
        response = await h.client.post("/webhooks/segment", content=GOOD, headers={"X-Signature": raw})
        assert response.status_code == 401, response.text
        assert _stored(h) == []
