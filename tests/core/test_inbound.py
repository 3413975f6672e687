"""The webhook endpoint over HTTP: verification, bad input, quirks, dedupe."""

from __future__ import annotations

import gzip
import json

import orjson
import pytest

from sgbridge.emulators.event_factory import EventFactory
from tests.conftest import PEER_FIXTURES, BridgeFactory

pytestmark = pytest.mark.anyio
DOCS_BATCH = json.loads((PEER_FIXTURES / "sendgrid" / "events" / "docs_batch_all_types.json").read_text())


def _stored(harness) -> int:  # type: ignore[no-untyped-def]
    return harness.bridge.journal.stats()["max_seq"]


async def test_signed_batch_is_stored_and_acknowledged(bridge_factory: BridgeFactory) -> None:
    events = EventFactory(1).batch(20)
    async with bridge_factory() as h:
        response = await h.post(events)
        assert response.status_code == 200, response.text
        assert response.json()["stored"] == 20
        assert _stored(h) == 20


@pytest.mark.parametrize(("mutate", "status"), [
    (lambda body, headers: (body + b" ", headers), 403),
    (lambda body, headers: (body, {**headers, "X-Twilio-Email-Event-Webhook-Timestamp": "1"}), 403),
    (lambda body, headers: (body, {k: v for k, v in headers.items() if "Signature" not in k}), 401),
    (lambda body, headers: (body, {k: v for k, v in headers.items() if "Timestamp" not in k}), 401),
])
async def test_bad_signatures_store_nothing(bridge_factory: BridgeFactory, mutate, status: int) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import signed

    async with bridge_factory() as h:
        post = signed(h.keypair, EventFactory(2).batch(3))
        body, headers = mutate(post.body, post.headers)
        response = await h.client.post("/webhooks/sendgrid", content=body, headers=headers)
        assert response.status_code == status
        assert "error" in response.json()
        assert _stored(h) == 0


@pytest.mark.parametrize(("body", "fragment"), [
    (b"{not json", "not valid JSON"),
    (b'{"event": "open"}', "JSON array"),
    (b'[{"event": "open"}, 3]', "item 1"),
    (b'"text"', "JSON array"),
    (b'[{"event": "open", "x": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}]", "nested too deep"),
])
async def test_malformed_bodies_get_400_with_reason(bridge_factory: BridgeFactory, body: bytes, fragment: str) -> None:
    async with bridge_factory() as h:
        response = await h.post(body)
        assert response.status_code == 400
        assert fragment in response.json()["error"]
        assert _stored(h) == 0


async def test_oversized_body_is_413(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(SGBRIDGE_INGEST__MAX_BODY_BYTES="4096") as h:
        response = await h.post(EventFactory(3).batch(40))
        assert response.status_code == 413
        assert _stored(h) == 0


async def test_five_mib_body_is_accepted(bridge_factory: BridgeFactory) -> None:
    factory = EventFactory(4)
    events = factory.batch(14000)
    async with bridge_factory() as h:
        post = await h.post(events)
        assert post.status_code == 200, post.text
        assert len(orjson.dumps(events)) > 5 * 1024 * 1024 or post.json()["received"] == 14000


async def test_gzip_body_is_accepted(bridge_factory: BridgeFactory) -> None:
    from tests.conftest import signed

    async with bridge_factory() as h:
        post = signed(h.keypair, EventFactory(5).batch(10))
        response = await h.client.post("/webhooks/sendgrid", content=gzip.compress(post.body),
                                       headers={**post.headers, "Content-Encoding": "gzip"})
        assert response.status_code == 200, response.text
        assert _stored(h) == 10


async def test_gzip_bomb_is_refused(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(SGBRIDGE_INGEST__MAX_BODY_BYTES="100000") as h:
        bomb = gzip.compress(b"[" + b" " * 10_000_000 + b"]")
        response = await h.client.post("/webhooks/sendgrid", content=bomb,
                                       headers={"Content-Encoding": "gzip"})
        assert response.status_code == 413


async def test_unknown_source_is_404(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory() as h:
        response = await h.post(EventFactory(6).batch(1), path="/webhooks/sendgrid/nope")
        assert response.status_code == 404


async def test_duplicates_and_changed_ids_are_stored_once(bridge_factory: BridgeFactory) -> None:
    events = EventFactory(7).batch(10)
    changed_id = [dict(e, sg_event_id=e["sg_event_id"] + "-retry") for e in events[:4]]
    async with bridge_factory() as h:
        first = await h.post(events)
        again = await h.post(events[:5] + changed_id)
        assert first.json()["stored"] == 10
        assert again.json() | {"request_id": 0} == {"received": 9, "stored": 0, "duplicates": 9,
                                                           "rejected": [], "request_id": 0}
        await h.wait_delivered(sum(1 for e in events if e["event"] != "deferred"))
        assert h.segment.duplicates == 0


async def test_docs_batch_reaches_segment_with_native_names(bridge_factory: BridgeFactory) -> None:
    # The docs batch uses the placeholder "sg_event_id" as every event's id: as sent, it is
    # one event and ten duplicates. With distinct ids, each type must arrive under its name.
    unique = [dict(e, sg_event_id=f"docs-{i}") for i, e in enumerate(DOCS_BATCH)]
    async with bridge_factory() as h:
        assert (await h.post(DOCS_BATCH)).json()["stored"] == 1
        response = await h.post(unique)
        assert response.json()["stored"] == len(DOCS_BATCH) - 1  # the processed one was stored already
        await h.wait_delivered(len(DOCS_BATCH) - 1)  # deferred is off by default
        assert h.segment.accepted == len(DOCS_BATCH) - 1
        names = sorted(m["event"] for m in h.segment.messages())
    assert names == sorted([
        "Email Processed", "Email Delivered", "Email Opened", "Email Link Clicked", "Email Bounced",
        "Email Dropped", "Email Marked as Spam", "Unsubscribed", "Unsubscribed From Group",
        "Resubscribed To Group"])


async def test_quirks_are_tolerated(bridge_factory: BridgeFactory) -> None:
    base = {"email": "Quirk@Example.com ", "sg_message_id": "m.1"}
    events = [
        {**base, "event": "processed", "sg_event_id": "q1", "timestamp": 1700000000, "category": "one"},
        {**base, "event": "deferred", "sg_event_id": "q2", "timestamp": 1700000000123, "attempt": "3"},
        {**base, "event": "deferred", "sg_event_id": "q3", "timestamp": "1700000001", "attempt": 4},
        {"email": "x@example.com", "event": "bounce", "sg_event_id": "q4", "timestamp": 1700000002,
         "type": "blocked", "bounce_classification": "Reputation", "reason": "550 blocked"},
        {**base, "event": "delivered", "sg_event_id": "q5", "timestamp": 1700000003, "user_id": "u-42",
         "category": ["a", "b"], "order_ref": "A-1"},
        {"event": "account_status_change", "sg_event_id": "q6", "timestamp": 1700000004, "type": "compliance_ban"},
    ]
    async with bridge_factory(SGBRIDGE_SOURCES__DEFAULT__EVENTS="processed,deferred,bounce,delivered") as h:
        response = await h.post(events)
        assert response.json()["stored"] == 6
        await h.wait_delivered(5)
        by_id = {m["properties"]["sg_event_id"]: m for m in h.segment.messages()}
        status = h.bridge.journal.stats()
    assert set(by_id) == {"q1", "q2", "q3", "q4", "q5"}
    assert by_id["q1"]["properties"]["categories"] == ["one"]
    assert by_id["q2"]["timestamp"] == "2023-11-14T22:13:20.123Z"
    assert by_id["q2"]["properties"]["attempt"] == 3 and by_id["q3"]["properties"]["attempt"] == 4
    assert by_id["q3"]["timestamp"] == "2023-11-14T22:13:21.000Z"
    assert "status" not in by_id["q4"]["properties"] and by_id["q4"]["properties"]["type"] == "blocked"
    assert by_id["q5"]["properties"]["order_ref"] == "A-1" and by_id["q5"]["properties"]["user_id"] == "u-42"
    assert by_id["q5"]["context"]["traits"]["email"] == "Quirk@Example.com "
    # The unknown event type is kept and reported, not forwarded.
    assert status["outcomes"] == {"segment:dropped": 1}
