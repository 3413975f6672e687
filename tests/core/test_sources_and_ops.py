"""Named sources, unsigned sources, freshness window, health, metrics and the operator CLI."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from sgbridge.cli import main
from sgbridge.emulators.event_factory import EventFactory
from sgbridge.emulators.webhook_signing import generate_keypair
from tests.conftest import BridgeFactory, signed

pytestmark = pytest.mark.anyio


def _forwardable(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] != "deferred"]


async def test_named_source_has_its_own_key_events_and_write_key(bridge_factory: BridgeFactory,
                                                                  tmp_path: Path) -> None:
    other = generate_keypair()
    config = tmp_path / "sgbridge.toml"
    config.write_text(f'''
[sources.transactional]
public_keys = ["{other.public_key_base64}"]
segment_write_key = "other-write-key"
events = ["delivered"]
''')
    events = EventFactory(21).batch(30)
    async with bridge_factory(config=str(config)) as h:
        # Signed with the default source's key: refused by the named source.
        assert (await h.post(events, path="/webhooks/sendgrid/transactional")).status_code == 403
        post = signed(other, events)
        response = await h.client.post("/webhooks/sendgrid/transactional", content=post.body, headers=post.headers)
        assert response.status_code == 200
        delivered = [e for e in events if e["event"] == "delivered"]
        await h.wait_delivered(len(delivered))
        messages = h.segment.messages()
    assert {m["writeKey"] for m in messages} == {"other-write-key"}
    assert sorted(m["properties"]["sg_event_id"] for m in messages) == sorted(e["sg_event_id"] for e in delivered)


async def test_unsigned_source_only_when_configured(bridge_factory: BridgeFactory) -> None:
    events = _forwardable(EventFactory(22).batch(5))
    body = orjson.dumps(events)
    async with bridge_factory(SGBRIDGE_SOURCES__DEFAULT__UNSIGNED="true") as h:
        assert (await h.client.post("/webhooks/sendgrid", content=body)).status_code == 200
        await h.wait_delivered(len(events))
    async with bridge_factory(SGBRIDGE_SOURCES__DEFAULT__UNSIGNED=None) as h:
        assert (await h.client.post("/webhooks/sendgrid", content=body)).status_code == 401


async def test_optional_timestamp_window(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(SGBRIDGE_SOURCES__DEFAULT__TIMESTAMP_TOLERANCE_SECONDS="300") as h:
        stale = signed(h.keypair, EventFactory(23).batch(2), timestamp="1600000000")
        response = await h.client.post("/webhooks/sendgrid", content=stale.body, headers=stale.headers)
        assert response.status_code == 403 and "tolerance" in response.json()["error"]
    # No window by default: SendGrid retries for 24 h.
    async with bridge_factory(SGBRIDGE_SOURCES__DEFAULT__TIMESTAMP_TOLERANCE_SECONDS=None) as h:
        assert (await h.client.post("/webhooks/sendgrid", content=stale.body, headers=stale.headers)).status_code == 200


async def test_healthz_and_metrics(bridge_factory: BridgeFactory) -> None:
    events = _forwardable(EventFactory(24).batch(8))
    async with bridge_factory() as h:
        assert (await h.client.get("/healthz")).json()["destinations"] == ["segment"]
        await h.post(events)
        await h.post(events)
        await h.wait_delivered(len(events))
        text = (await h.client.get("/metrics")).text
    assert 'sgbridge_inbound_events_total{result="duplicate",source="default"}' in text
    assert "sgbridge_delivery_events_total" in text


async def test_metrics_token(bridge_factory: BridgeFactory) -> None:
    async with bridge_factory(SGBRIDGE_METRICS_TOKEN="s3cret") as h:
        assert (await h.client.get("/metrics")).status_code == 401
        assert (await h.client.get("/metrics", headers={"Authorization": "Bearer s3cret"})).status_code == 200


async def test_dead_letters_cli_lists_and_replays(bridge_factory: BridgeFactory, sqlite_url: str) -> None:
    import anyio

    events = _forwardable(EventFactory(25).batch(6))
    runner = CliRunner()
    async with bridge_factory(SEGMENT_WRITE_KEY="revoked-key") as h:
        await h.post(events)
        with anyio.fail_after(20):
            while len(h.bridge.journal.dead_letters()) < len(events):
                await anyio.sleep(0.05)
        env = {"SGBRIDGE_DATABASE_URL": sqlite_url}
        listed = await anyio.to_thread.run_sync(
            lambda: runner.invoke(main, ["dead-letters", "list", "--json"], env=env))
        rows = [orjson.loads(line) for line in listed.output.splitlines()]
        assert sorted(r["sg_event_id"] for r in rows) == sorted(e["sg_event_id"] for e in events)
        assert all("401" in r["reason"] for r in rows)
        narrow = await anyio.to_thread.run_sync(
            lambda: runner.invoke(main, ["dead-letters", "list"], env={**env, "COLUMNS": "80"}))
        lines = narrow.output.splitlines()
        assert max(len(line) for line in lines) <= 80
        # each dead letter's id and event id read whole, not wrapped into a strip of a table cell
        assert all(any(e["sg_event_id"] in line for line in lines) for e in events)
        assert sum(1 for line in lines if line.startswith(f"#{rows[0]['id']} ")) == 1
        h.segment.write_keys = None  # the key is fixed
        replay = await anyio.to_thread.run_sync(
            lambda: runner.invoke(main, ["dead-letters", "replay", str(rows[0]["id"])], env=env))
        assert "queued 1" in replay.output
        await h.wait_delivered(1)
        shown = await anyio.to_thread.run_sync(
            lambda: runner.invoke(main, ["events", "show", rows[0]["sg_event_id"]], env=env))
        assert '"outcome": "delivered"' in shown.output
