"""What the SendGrid webhook stores, every consumer can read; what it cannot keep it refuses alone.

A 400 would make SendGrid retry the whole body for 24 hours and then drop it, good events with the
bad one, so an event the journal cannot keep is listed in the answer's `rejected` and the rest is
stored (inbound/readable.py). Each case was a 500 or a stored event that broke a consumer.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sgbridge.inbound.readable import MAX_DEPTH, too_deep
from tests.conftest import BridgeFactory, signed

pytestmark = pytest.mark.anyio

GOOD = b'{"event":"delivered","email":"a@example.com","timestamp":1700000000,"sg_event_id":"good-1"}'


def _bad(fields: bytes) -> bytes:
    return b'{"event":"open","email":"b@example.com","timestamp":1700000000,' + fields + b"}"


def _bodies(h: Any) -> list[bytes]:
    rows = h.bridge.journal.run_sync(lambda conn: conn.execute("SELECT body FROM events ORDER BY seq").fetchall())
    return [bytes(r[0]) for r in rows]


@pytest.mark.parametrize(("bad", "fragment"), [
    (_bad(b'"sg_event_id":"x1","x":1e400'), "infinity"),
    (_bad(b'"sg_event_id":"x2","x":-17976931348623159e292'), "infinity"),
    (_bad(b'"sg_event_id":"x3","x":"caf\xe9"'), "UTF-8"),
    (_bad(b'"sg_event_id":"x4","x":' + b"[" * 300 + b"]" * 300), f"nested more than {MAX_DEPTH}"),
    (_bad(b'"sg_event_id":"x5","x":' + b'{"a":' * 70 + b"1" + b"}" * 70), f"nested more than {MAX_DEPTH}"),
    (_bad(b'"sg_event_id":123456789012345678901234567890'), "sg_event_id"),
    (_bad(b'"sg_event_id":18446744073709551616'), "sg_event_id"),
    (_bad(b'"sg_event_id":{"a":1}'), "sg_event_id"),
    (_bad(b'"sg_event_id":1e400'), "infinity"),
    (b'{"event":"open\\u0000","email":"c@example.com","sg_event_id":"x6"}', "NUL"),
])
async def test_an_event_the_journal_cannot_keep_is_refused_alone(bridge_factory: BridgeFactory, database_url: str,
                                                                 bad: bytes, fragment: str) -> None:
    async with bridge_factory(database_url) as h:
        response = await h.post(b"[" + GOOD + b",\r\n" + bad + b"]")
        assert response.status_code == 200, response.text
        reply = response.json()
        assert (reply["received"], reply["stored"]) == (2, 1)
        [rejected] = reply["rejected"]
        assert rejected["index"] == 1 and fragment in rejected["error"], rejected
        [stored] = _bodies(h)
        assert stored == GOOD  # the other event is kept exactly as sent


async def test_a_body_nothing_of_which_can_be_kept_stores_nothing(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory() as h:
        response = await h.post(b"[" + _bad(b'"x":1e400') + b"]")
        assert response.status_code == 200
        assert response.json()["stored"] == 0 and len(response.json()["rejected"]) == 1
        assert _bodies(h) == []


async def test_what_is_stored_is_read_by_orjson_and_written_again(bridge_factory: BridgeFactory) -> None:
    # Edge cases the rules let through: the largest finite double, 64 levels, big whole numbers
    # outside sg_event_id (orjson reads them as doubles), escaped NUL, a 64-bit integer id.
    edge = [_bad(b'"sg_event_id":"e1","x":1.7976931348623157e308'),
            _bad(b'"sg_event_id":"e2","x":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1)),
            _bad(b'"sg_event_id":"e3","x":123456789012345678901234567890'),
            _bad(b'"sg_event_id":"e4","x":"a\\u0000b"'),
            _bad(b'"sg_event_id":9223372036854775807'),
            _bad(b'"sg_event_id":"e5","x":"caf\xc3\xa9 \xf0\x9f\x98\x80"')]
    async with bridge_factory() as h:
        response = await h.post(b"[" + b",".join(edge) + b"]")
        assert response.json()["rejected"] == [] and response.json()["stored"] == len(edge), response.text
        for body in _bodies(h):
            value = orjson.loads(body)
            assert not too_deep(value)
            orjson.dumps({"wrapped": {"twice": value}})


@pytest.mark.parametrize("headers", [
    {"X-Twilio-Email-Event-Webhook-Signature": "é".encode()},
    {"X-Twilio-Email-Event-Webhook-Timestamp": "1700000000é".encode()},
    {"X-Twilio-Email-Event-Webhook-Signature": "\xff\xfe".encode("latin-1")},
])
async def test_non_ascii_signature_headers_are_refused_not_500(bridge_factory: BridgeFactory,
                                                               headers: dict[str, bytes]) -> None:
    async with bridge_factory() as h:
        post = signed(h.keypair, [{"event": "open", "email": "a@example.com", "sg_event_id": "n1"}])
        response = await h.client.post("/webhooks/sendgrid", content=post.body, headers={**post.headers, **headers})
        assert response.status_code in (401, 403), response.text
        assert _bodies(h) == []


@pytest.mark.parametrize("timestamp", ["nan", "NaN", "inf"])
async def test_a_signed_timestamp_that_is_not_a_time_fails_the_freshness_window(bridge_factory: BridgeFactory,
                                                                                timestamp: str) -> None:
    async with bridge_factory(SGBRIDGE_SOURCES__DEFAULT__TIMESTAMP_TOLERANCE_SECONDS="300") as h:
        post = signed(h.keypair, [{"event": "open", "email": "a@example.com", "sg_event_id": "t1"}], timestamp)
        response = await h.client.post("/webhooks/sendgrid", content=post.body, headers=post.headers)
        assert response.status_code == 403, response.text  # "nan" compared false with the tolerance
        assert _bodies(h) == []
