"""Segment's Webhooks destination signs only the first event of a batch: a captured signed event
must not carry forged events in with it. The second factor is a custom header with a secret."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest

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
    from sgbridge.settings import load_settings

    monkeypatch.setenv("SEGMENT_WEBHOOK_HEADER_SECRET", TOKEN)
    settings = load_settings()
    assert settings.segment_inbound.header_secret is not None
    assert settings.segment_inbound.header_secret.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
