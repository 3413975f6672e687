"""Segment's Webhooks destination signs only the first event of a batch: a captured signed event
must not carry forged events in with it. The second factor is a custom header with a secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import anyio
import httpx
import orjson
import pytest

from sgbridge.app import build_app
from sgbridge.settings import load_settings
from tests.actions.harness import HostRouter
from tests.conftest import BridgeFactory

pytestmark = pytest.mark.anyio

SECRET = "webhook-secret"
TOKEN = "Bearer 6a1f0c2e9b"
CAPTURED = b'{"type":"identify","userId":"real-user","messageId":"real-1","traits":{"plan":"pro"}}'
FORGED = b'{"type":"identify","userId":"victim","messageId":"forged-1","traits":{"email":"attacker@example.com"}}'
BATCH = b"[" + CAPTURED + b"," + FORGED + b"]"


def _sign(data: bytes) -> str:
    return hmac.new(SECRET.encode(), data, hashlib.sha1).hexdigest()


def _ids(h: Any) -> list[str]:
    rows = h.bridge.journal.run_sync(lambda conn: conn.execute("SELECT body FROM events ORDER BY seq").fetchall())
    return [orjson.loads(bytes(r[0]))["messageId"] for r in rows]


async def test_forged_elements_riding_on_a_captured_signature_are_refused(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(SEGMENT_WEBHOOK_SHARED_SECRET=SECRET) as h:
        r = await h.client.post("/webhooks/segment", content=BATCH, headers={"X-Signature": _sign(CAPTURED)})
        assert r.status_code == 403, r.text
        assert "covers only the first" in r.json()["error"] and r.json()["code"] == "forbidden"
        assert _ids(h) == []
        # The captured event alone, signed, is still taken; so is a batch of one.
        for body in (CAPTURED, b"[" + CAPTURED + b"]"):
            ok = await h.client.post("/webhooks/segment", content=body, headers={"X-Signature": _sign(CAPTURED)})
            assert ok.status_code == 200, ok.text
        assert _ids(h) == ["real-1"]


async def test_unsigned_elements_only_when_turned_on(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(SEGMENT_WEBHOOK_SHARED_SECRET=SECRET,
                              SGBRIDGE_SEGMENT_INBOUND__ACCEPT_UNSIGNED_BATCH_ELEMENTS="true") as h:
        r = await h.client.post("/webhooks/segment", content=BATCH, headers={"X-Signature": _sign(CAPTURED)})
        assert r.status_code == 200, r.text
        assert _ids(h) == ["real-1", "forged-1"]  # the documented risk of this setting


async def test_a_verified_header_secret_authenticates_the_whole_batch(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(SEGMENT_WEBHOOK_SHARED_SECRET=SECRET, SEGMENT_WEBHOOK_HEADER_SECRET=TOKEN) as h:
        signed = {"X-Signature": _sign(CAPTURED)}
        missing = await h.client.post("/webhooks/segment", content=BATCH, headers=signed)
        wrong = await h.client.post("/webhooks/segment", content=BATCH,
                                    headers={**signed, "Authorization": "Bearer 6a1f0c2e9c"})
        non_ascii = await h.client.post("/webhooks/segment", content=BATCH,
                                        headers={**signed, "Authorization": "Bearer é".encode()})
        for refused in (missing, wrong, non_ascii):
            assert refused.status_code == 401, refused.text
            assert "Authorization header" in refused.json()["error"]
            assert TOKEN not in refused.text  # the secret is never echoed
        no_signature = await h.client.post("/webhooks/segment", content=BATCH, headers={"Authorization": TOKEN})
        assert no_signature.status_code == 401  # with both configured, both must match
        assert _ids(h) == []
        ok = await h.client.post("/webhooks/segment", content=BATCH, headers={**signed, "Authorization": TOKEN})
        assert ok.status_code == 200, ok.text
        assert _ids(h) == ["real-1", "forged-1"]


async def test_a_header_secret_alone_under_a_custom_header_name(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(SEGMENT_WEBHOOK_SHARED_SECRET=None, SGBRIDGE_SEGMENT_INBOUND__HEADER_NAME="X-Hook-Token",
                              SGBRIDGE_SEGMENT_INBOUND__HEADER_SECRET="s3cret-token") as h:
        refused = await h.client.post("/webhooks/segment", content=BATCH, headers={"X-Hook-Token": "s3cret-tokeN"})
        assert refused.status_code == 401 and "X-Hook-Token" in refused.json()["error"]
        ok = await h.client.post("/webhooks/segment", content=BATCH, headers={"x-hook-token": "s3cret-token"})
        assert ok.status_code == 200, ok.text
        assert _ids(h) == ["real-1", "forged-1"]


def test_the_header_secret_is_masked_in_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_WEBHOOK_HEADER_SECRET", TOKEN)
    settings = load_settings()
    assert settings.segment_inbound.header_secret is not None
    assert settings.segment_inbound.header_secret.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())


@pytest.mark.parametrize("with_header", [True, False])
async def test_sgbridges_own_webhook_action_in_batch_mode_end_to_end(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                                     with_header: bool) -> None:
    """One sgbridge's webhook action (Segment's Webhooks destination: batches, only the first event
    signed, custom headers) posting to another sgbridge's /webhooks/segment."""
    for name in ("SEGMENT_WRITE_KEY", "SENDGRID_WEBHOOK_PUBLIC_KEY", "SGBRIDGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SGBRIDGE_WAREHOUSE__ENABLED", "false")
    monkeypatch.setenv("SGBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'receiver.db'}")
    monkeypatch.setenv("SEGMENT_WEBHOOK_SHARED_SECRET", SECRET)
    if with_header:
        monkeypatch.setenv("SEGMENT_WEBHOOK_HEADER_SECRET", TOKEN)
    receiver = build_app(load_settings())
    headers = f', headers = {{ Authorization = "{TOKEN}" }}' if with_header else ""
    config = tmp_path / "sender.toml"
    config.write_text(f"""
[segment_inbound]
write_keys = ["sender-key"]

[actions.forward]
destination = "webhook"
settings = {{ sharedSecret = "{SECRET}" }}

[[actions.forward.subscriptions]]
action = "send"
trigger = 'type = "identify"'
mapping = {{ url = "http://receiver.test/webhooks/segment", method = "POST", data = {{ "@path" = "$." }}{headers} }}
""")
    monkeypatch.setenv("SGBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'sender.db'}")
    for name in ("SEGMENT_WEBHOOK_SHARED_SECRET", "SEGMENT_WEBHOOK_HEADER_SECRET"):
        monkeypatch.delenv(name, raising=False)
    sender = build_app(load_settings(str(config)), transport=HostRouter({"receiver.test": receiver}))
    events = [{"type": "identify", "userId": f"u{i}", "messageId": f"e2e-{i}"} for i in range(3)]
    async with (
        receiver.router.lifespan_context(receiver), sender.router.lifespan_context(sender),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=sender), base_url="http://sender") as client,
    ):
        basic = "Basic " + base64.b64encode(b"sender-key:").decode()
        sent = await client.post("/v1/batch", json={"batch": events}, headers={"Authorization": basic})
        assert sent.status_code == 200, sent.text
        with anyio.fail_after(20):
            while sender.state.bridge.journal.stats()["cursors"].get("forward", 0) < 3:
                await anyio.sleep(0.02)
        received = sorted(_ids(receiver.state))
        dead = sender.state.bridge.journal.dead_letters()
    if with_header:
        assert received == ["e2e-0", "e2e-1", "e2e-2"] and dead == []
    else:  # no header secret: one request for the three, only its first event signed: refused whole
        assert received == []
        assert len(dead) == 3 and all("403" in d["reason"] for d in dead), dead
