"""The webhook sender must produce what SendGrid produces (sendgrid-api.md §1-2).

Signatures are checked here the way a receiver would, with ``cryptography`` and the base64
public key only; the verifier itself is first validated against the SDK test vectors.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgbridge.emulators.sendgrid_webhook import (
    EVENT_KINDS,
    EventFactory,
    WebhookSender,
    frame_events,
    generate_keypair,
    load_private_key_pem,
    run_webhook_sender,
    sign,
)
from sgbridge.emulators.serving import serve_in_thread

SG_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{22}\.(filterdrecv|recvd)-[0-9a-f]{10}-[a-z0-9]{5}-\d+-[0-9A-F]{8}-\d+\.\d")
VECTORS = Path("/work/shared/fixtures/peers/sendgrid/signature/vectors.json")
SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"


def verify(public_key_b64: str, timestamp: str, body: bytes, signature_b64: str) -> bool:
    """What a receiver does: SPKI DER key from base64, ECDSA/SHA-256 over timestamp||body."""
    key = serialization.load_der_public_key(base64.b64decode(public_key_b64))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(base64.b64decode(signature_b64), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def vectors() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(VECTORS.read_text())["vectors"]
    return data


# -- signing and framing ------------------------------------------------------------------------


@pytest.mark.parametrize("vector", vectors(), ids=lambda v: v["id"])
def test_receiver_verifier_agrees_with_sdk_vectors(vector: dict[str, Any]) -> None:
    body = base64.b64decode(vector["payload_base64"])
    ok = verify(vector["public_key_base64_der_spki"], vector["timestamp_header"], body, vector["signature_header"])
    assert ok is vector["expected_valid"]


def test_frame_events_reproduces_the_signed_vector_payload() -> None:
    vector = next(v for v in vectors() if v["id"] == "single_event_valid")
    expected = base64.b64decode(vector["payload_base64"])
    (event,) = json.loads(expected)
    shuffled = dict(reversed(list(event.items())))  # framing must sort keys, not keep input order
    framed = frame_events([shuffled])
    assert framed == expected
    assert verify(vector["public_key_base64_der_spki"], vector["timestamp_header"], framed, vector["signature_header"])


def test_frame_events_multi_event_layout() -> None:
    events: list[dict[str, Any]] = [
        {"b": {"y": "<a&b>", "x": 1}, "a": 1},
        {"email": "zoë@example.com", "smtp-id": "<x@y>"},
    ]
    expected = '[{"a":1,"b":{"x":1,"y":"<a&b>"}},\r\n{"email":"zoë@example.com","smtp-id":"<x@y>"}]\r\n'
    assert frame_events(events) == expected.encode("utf-8")
    assert frame_events([]) == b"[]\r\n"


def test_generated_keys_look_like_sendgrids_and_signatures_verify() -> None:
    pair = generate_keypair()
    assert pair.public_key_base64.startswith("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE")
    assert len(base64.b64decode(pair.public_key_base64)) == 91
    body = frame_events(EventFactory(1).batch(3))
    signature = sign(pair.private_key, "1700000000", body)
    assert verify(pair.public_key_base64, "1700000000", body, signature)
    assert not verify(pair.public_key_base64, "1700000001", body, signature)
    assert not verify(pair.public_key_base64, "1700000000", body.replace(b"\r\n", b"\n"), signature)
    reloaded = load_private_key_pem(pair.private_key_pem())
    assert verify(pair.public_key_base64, "1", b"x", sign(reloaded, "1", b"x"))


@pytest.mark.parametrize("key", [rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP384R1())])
def test_loading_a_non_p256_key_is_refused(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(ValueError):
        load_private_key_pem(pem)


# -- event factory ---------------------------------------------------------------------------------


def test_event_factory_is_deterministic_per_seed() -> None:
    assert EventFactory(5).batch(50) == EventFactory(5).batch(50)
    assert EventFactory(5).batch(50) != EventFactory(6).batch(50)
    with pytest.raises(ValueError):
        EventFactory(1).event("blocked_bounce")


def test_event_factory_covers_sendgrid_quirks() -> None:
    factory = EventFactory(11)
    events = factory.batch(3000) + factory.one_of_each()
    by_name = Counter(e["event"] for e in events)
    assert set(by_name) == {k for k in EVENT_KINDS if k != "blocked"}
    ids = [e["sg_event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", i) and len(i) <= 100 for i in ids)
    for e in events:
        assert isinstance(e["email"], str) and "@" in e["email"]
        assert isinstance(e["timestamp"], int)
        if "sg_message_id" in e:
            assert SG_MESSAGE_ID.fullmatch(e["sg_message_id"])
        if "smtp-id" in e:
            assert e["smtp-id"].startswith("<" + e["sg_message_id"].split(".")[0] + "@")
    deferred = [e for e in events if e["event"] == "deferred"]
    assert deferred and all(isinstance(e["attempt"], str) and e["attempt"].isdigit() for e in deferred)
    bounces = [e for e in events if e["event"] == "bounce"]
    assert {e["type"] for e in bounces} == {"bounce", "blocked"}
    assert all("bounce_classification" in e for e in bounces)
    blocked = [e for e in bounces if e["type"] == "blocked"]
    assert any("status" not in e for e in blocked) and any("status" in e for e in blocked)
    assert any("ip" not in e for e in blocked)
    opens = [e for e in events if e["event"] == "open"]
    assert {e["sg_machine_open"] for e in opens} == {True, False}
    assert all(e["useragent"] and e["ip"] and e["sg_content_type"] for e in opens)
    clicks = [e for e in events if e["event"] == "click"]
    assert all(e["url"].startswith("https://") and isinstance(e["url_offset"]["index"], int) for e in clicks)
    groups = [e for e in events if e["event"].startswith("group_")]
    assert groups and all(isinstance(e["asm_group_id"], int) for e in groups)
    processed = [e for e in events if e["event"] == "processed"]
    assert any("pool" in e for e in processed) and all("send_at" in e for e in processed)
    assert {type(e.get("category")).__name__ for e in events} == {"str", "list", "NoneType"}
    single = [e for e in events if "singlesend_id" in e]
    assert single and all(
        e["timestamp"] > 10**12 and e["category"] == [] and e["mc_stats"] == "singlesend" and e["phase_id"]
        for e in single
    )
    assert all(isinstance(e["send_at"], str) and e["template_id"] for e in single)
    automation = [e for e in events if "mc_auto_id" in e]
    assert automation and all(e["mc_auto_name"] and e["mc_auto_step_id"] for e in automation)
    assert all(e["timestamp"] < 10**12 for e in events if "singlesend_id" not in e)
    assert any("user_id" in e for e in events)  # custom args at the top level
    # Engagement events come back for messages seen before, as in a real stream.
    delivered_ids = {e["sg_message_id"] for e in events if e["event"] == "delivered"}
    assert any(e["sg_message_id"] in delivered_ids for e in opens)


# -- sender ------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A webhook endpoint that verifies every request like the bridge will, and can misbehave."""

    public_key: str | None = None
    fail_first: int = 0
    fail_always: bool = False
    latency: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                raw = await request.body()
                body = gzip.decompress(raw) if request.headers.get("content-encoding") == "gzip" else raw
                record = {
                    "body": body,
                    "timestamp": request.headers[TS],
                    "signature": request.headers[SIG],
                    "content_type": request.headers["content-type"],
                    "events": json.loads(body),
                    "valid": None,
                }
                if self.public_key is not None:
                    record["valid"] = verify(self.public_key, record["timestamp"], body, record["signature"])
                self.requests.append(record)
                if self.latency:
                    await asyncio.sleep(self.latency)
                if self.fail_always or len(self.requests) <= self.fail_first:
                    return Response("try later", status_code=500)
                return Response(status_code=200 if record["valid"] is not False else 403)
            finally:
                self.in_flight -= 1

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def acked_events(self) -> list[dict[str, Any]]:
        return [e for r in self.requests if r["valid"] is not False for e in r["events"]]


def make_sender(receiver: Receiver, **kwargs: Any) -> WebhookSender:
    pair = generate_keypair()
    receiver.public_key = pair.public_key_base64
    kwargs.setdefault("rate", None)
    return WebhookSender(
        "http://bridge/hook", pair.private_key, transport=httpx.ASGITransport(app=receiver.app()), **kwargs
    )


def without_id(event: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in event.items() if k != "sg_event_id"}, option=orjson.OPT_SORT_KEYS)


@pytest.mark.anyio
async def test_sender_posts_signed_sendgrid_framed_batches() -> None:
    receiver = Receiver()
    sender = make_sender(receiver, batch_size=50, factory=EventFactory(3))
    summary = await sender.run(total=230)
    assert len(receiver.requests) == 5
    assert all(r["valid"] is True and r["content_type"] == "application/json" for r in receiver.requests)
    # Bodies are exactly SendGrid's framing of the events they carry.
    assert all(r["body"] == frame_events(r["events"]) for r in receiver.requests)
    assert [len(r["events"]) for r in receiver.requests] == [50, 50, 50, 50, 30]
    assert [e for r in receiver.requests for e in r["events"]] == EventFactory(3).batch(230)
    received_ids = {e["sg_event_id"] for e in receiver.acked_events()}
    assert sender.acked_event_ids == received_ids == sender.acked_logical
    assert (summary["generated"], summary["logical_acked"], summary["logical_lost"]) == (230, 230, 0)
    assert (summary["requests"], summary["acked_requests"], summary["failed_requests"]) == (5, 5, 0)


@pytest.mark.anyio
async def test_sender_resends_duplicates_and_changed_ids_in_later_batches() -> None:
    receiver = Receiver()
    sender = make_sender(receiver, batch_size=20, duplicate_fraction=0.2, changed_id_fraction=0.1, seed=9)
    summary = await sender.run(total=400)
    first_seen: dict[bytes, tuple[int, str]] = {}
    exact_dups = changed = 0
    for batch_no, request in enumerate(receiver.requests):
        for event in request["events"]:
            key = without_id(event)
            if key not in first_seen:
                first_seen[key] = (batch_no, event["sg_event_id"])
                continue
            earlier_batch, earlier_id = first_seen[key]
            assert earlier_batch < batch_no  # a re-send always travels in a later batch
            if event["sg_event_id"] == earlier_id:
                exact_dups += 1
            else:
                changed += 1
    assert len(first_seen) == 400
    assert exact_dups == summary["duplicates_sent"] > 40
    assert changed == summary["changed_id_resends"] > 15
    assert summary["events_sent"] == 400 + exact_dups + changed == len(receiver.acked_events())
    assert summary["logical_acked"] == 400
    assert len(sender.acked_event_ids) == 400 + changed


@pytest.mark.anyio
async def test_failed_batches_are_retried_with_the_same_bytes_and_a_new_signature() -> None:
    receiver = Receiver(fail_first=1)
    sender = make_sender(receiver, batch_size=10, backoff_initial=2.0)  # first retry after 1-2 s
    summary = await sender.run(total=10)
    failed, retried = receiver.requests
    assert failed["body"] == retried["body"]
    assert int(retried["timestamp"]) > int(failed["timestamp"])
    assert failed["signature"] != retried["signature"]
    assert failed["valid"] and retried["valid"]
    assert (summary["failed_requests"], summary["retried_requests"], summary["logical_acked"]) == (1, 1, 10)
    assert summary["status_counts"] == {"500": 1, "200": 1}


@pytest.mark.anyio
async def test_transport_errors_are_retried() -> None:
    calls: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.content)
        if len(calls) <= 2:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(204)

    sender = WebhookSender(
        "http://bridge/hook",
        generate_keypair().private_key,
        rate=None,
        batch_size=5,
        backoff_initial=0.01,
        transport=httpx.MockTransport(handler),
    )
    summary = await sender.run(total=5)
    assert len(calls) == 3 and calls[0] == calls[2]
    assert (summary["transport_errors"], summary["logical_acked"]) == (2, 5)
    assert summary["status_counts"] == {"ConnectError": 2, "204": 1}


@pytest.mark.anyio
async def test_batches_still_failing_at_the_deadline_are_abandoned() -> None:
    receiver = Receiver(fail_always=True)
    sender = make_sender(receiver, batch_size=10, retry_deadline=0.3, backoff_initial=0.05, backoff_max=0.1)
    started = time.monotonic()
    summary = await sender.run(total=30)
    assert time.monotonic() - started < 2
    assert summary["abandoned_batches"] == summary["batches"] == 3
    assert (summary["logical_acked"], summary["logical_lost"]) == (0, 30)
    assert summary["retried_requests"] >= 3
    assert sender.acked_logical == set()


@pytest.mark.anyio
async def test_rate_paces_the_events() -> None:
    receiver = Receiver()
    sender = make_sender(receiver, rate=400, batch_size=20)
    started = time.monotonic()
    await sender.run(total=200)
    # 10 batches: the last may leave only once 180 events' budget (0.45 s) has passed.
    assert time.monotonic() - started >= 0.44
    assert len(receiver.requests) == 10


@pytest.mark.anyio
async def test_duration_bounds_generation() -> None:
    receiver = Receiver()
    sender = make_sender(receiver, rate=200, batch_size=10)
    summary = await sender.run(duration=0.3)
    assert 20 <= summary["generated"] <= 80
    assert summary["logical_acked"] == summary["generated"]


@pytest.mark.anyio
async def test_several_posts_are_in_flight_at_once() -> None:
    receiver = Receiver(latency=0.1)
    sender = make_sender(receiver, batch_size=5, concurrency=4)
    started = time.monotonic()
    await sender.run(total=40)
    assert receiver.max_in_flight >= 3
    assert time.monotonic() - started < 0.7  # 8 batches x 0.1 s would take 0.8 s one at a time


@pytest.mark.anyio
async def test_gzip_bodies_carry_the_signed_framed_json() -> None:
    receiver = Receiver()
    sender = make_sender(receiver, batch_size=25, use_gzip=True)
    summary = await sender.run(total=50)
    assert all(r["valid"] is True for r in receiver.requests)
    assert summary["logical_acked"] == 50


@pytest.mark.anyio
async def test_run_webhook_sender_generates_a_key_and_prints_it(tmp_path: Path) -> None:
    receiver = Receiver()
    lines: list[str] = []
    key_file = tmp_path / "webhook.pem"
    with serve_in_thread(receiver.app()) as url:
        summary = await run_webhook_sender(
            f"{url}/hook", 500, 20, None, 60, None, save_private_key=key_file, echo=lines.append
        )
    public_key = summary["public_key"]
    assert f"SENDGRID_WEBHOOK_PUBLIC_KEY={public_key}" in lines[0]
    assert all(verify(public_key, r["timestamp"], r["body"], r["signature"]) for r in receiver.requests)
    assert summary["logical_acked"] == summary["generated"] == 60
    assert "acked 60/60" in lines[-1]
    reloaded = load_private_key_pem(key_file.read_text())
    assert verify(public_key, "1", b"body", sign(reloaded, "1", b"body"))


@pytest.mark.anyio
async def test_run_webhook_sender_uses_the_given_key() -> None:
    pair = generate_keypair()
    receiver = Receiver(public_key=pair.public_key_base64)
    summary = await run_webhook_sender(
        "http://bridge/hook",
        1000,
        10,
        None,
        30,
        pair.private_key_pem(),
        transport=httpx.ASGITransport(app=receiver.app()),
        echo=lambda _line: None,
    )
    assert summary["public_key"] == pair.public_key_base64
    assert receiver.requests and all(r["valid"] is True for r in receiver.requests)
    assert summary["logical_acked"] == 30
