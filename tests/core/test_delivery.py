"""Delivery to the Segment emulator: batching, outages, rate limits, rejections, replays."""

from __future__ import annotations

import anyio
import pytest

from sgbridge.emulators.event_factory import EventFactory
from tests.conftest import BridgeFactory

pytestmark = pytest.mark.anyio


def _forwardable(events: list[dict]) -> int:
    return sum(1 for e in events if e["event"] != "deferred")


async def _wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


async def test_each_event_arrives_once_with_deterministic_ids(bridge_factory: BridgeFactory) -> None:
    events = EventFactory(11).batch(300)
    async with bridge_factory() as h:
        for start in range(0, 300, 50):
            assert (await h.post(events[start:start + 50])).status_code == 200
        await h.wait_delivered(_forwardable(events))
        messages = h.segment.messages()
        assert h.segment.duplicates == 0
    ids = [m["messageId"] for m in messages]
    assert len(set(ids)) == len(ids) == _forwardable(events)
    assert {m["properties"]["sg_event_id"] for m in messages} == {
        e["sg_event_id"] for e in events if e["event"] != "deferred"}
    assert all(m["type"] == "track" and m["anonymousId"] and m["context"]["traits"]["email"] for m in messages)


async def test_outage_then_recovery_loses_nothing(bridge_factory: BridgeFactory) -> None:
    events = EventFactory(12).batch(200)
    async with bridge_factory() as h:
        await h.fault({"status": 503, "count": 6})
        await h.fault({"drop": True, "count": 2})
        assert (await h.post(events)).status_code == 200
        await h.wait_delivered(_forwardable(events))
        assert h.segment.accepted == _forwardable(events)
        attempts = h.bridge.journal.run_sync(
            lambda c: c.execute("SELECT outcome, COUNT(*) FROM attempts GROUP BY outcome").fetchall())
    by_outcome = dict(attempts)
    assert by_outcome["retry"] >= 6 and by_outcome["delivered"] >= 1


async def test_429_storm_honours_retry_after(bridge_factory: BridgeFactory) -> None:
    events = EventFactory(13).batch(50)
    async with bridge_factory() as h:
        await h.fault({"status": 429, "count": 3, "retry_after": 1})
        started = anyio.current_time()
        await h.post(events)
        await h.wait_delivered(_forwardable(events))
        elapsed = anyio.current_time() - started
    assert elapsed >= 3.0  # three waits of at least the one second Segment asked for


async def test_a_batch_refused_with_400_is_split_to_find_the_bad_event(bridge_factory: BridgeFactory) -> None:
    events = [e for e in EventFactory(14).batch(40) if e["event"] != "deferred"]
    async with bridge_factory() as h:
        await h.fault({"status": 400, "count": 1})
        await h.post(events)
        await h.wait_delivered(len(events))
        assert h.bridge.journal.dead_letters() == []


async def test_oversized_event_is_rejected_alone(bridge_factory: BridgeFactory) -> None:
    events = [e for e in EventFactory(15).batch(20) if e["event"] != "deferred"]
    events[3] = dict(events[3], huge_custom_arg="x" * 40_000)
    async with bridge_factory() as h:
        await h.post(events)
        await h.wait_delivered(len(events) - 1)
        await _wait_for(lambda: h.bridge.journal.dead_letters() != [])
        dead = h.bridge.journal.dead_letters()
    assert [d["sg_event_id"] for d in dead] == [events[3]["sg_event_id"]]
    assert "32768-byte limit" in dead[0]["reason"]


async def test_wrong_write_key_goes_to_dead_letters_and_replays_after_the_fix(bridge_factory: BridgeFactory) -> None:
    events = [e for e in EventFactory(16).batch(10) if e["event"] != "deferred"]
    async with bridge_factory(SEGMENT_WRITE_KEY="revoked-key") as h:
        await h.post(events)
        await _wait_for(lambda: len(h.bridge.journal.dead_letters()) == len(events))
        dead = h.bridge.journal.dead_letters()
        assert h.segment.accepted == 0
        assert all(d["status_code"] == 401 for d in dead)
        # The operator fixes the key (here: the emulator starts accepting it) and replays.
        h.segment.write_keys = None
        assert h.bridge.journal.request_replay(None) == len(events)
        await h.wait_delivered(len(events))
        await _wait_for(lambda: h.bridge.journal.dead_letters() == [])


async def test_events_past_the_maximum_age_are_rejected(bridge_factory: BridgeFactory) -> None:
    events = [e for e in EventFactory(17).batch(5) if e["event"] != "deferred"]
    async with bridge_factory(SGBRIDGE_DELIVERY__MAX_AGE_SECONDS="0.3") as h:
        await h.fault({"status": 503, "count": 1000})
        await h.post(events)
        await _wait_for(lambda: len(h.bridge.journal.dead_letters()) == len(events))
        reasons = {d["reason"] for d in h.bridge.journal.dead_letters()}
    assert all("maximum age" in r and "503" in r for r in reasons)


async def test_deliveries_are_logged_per_attempt(bridge_factory: BridgeFactory) -> None:
    events = [e for e in EventFactory(18).batch(30) if e["event"] != "deferred"]
    async with bridge_factory(SGBRIDGE_SEGMENT__MAX_BATCH_EVENTS="10") as h:
        await h.post(events)
        await h.wait_delivered(len(events))
        rows = h.bridge.journal.run_sync(
            lambda c: c.execute("SELECT event_count, status_code, url FROM attempts").fetchall())
    assert sum(r[0] for r in rows) == len(events)
    assert all(r[0] <= 10 and r[1] == 200 and r[2].endswith("/v1/batch") for r in rows)


async def test_an_event_can_be_followed_from_request_to_response(bridge_factory: BridgeFactory) -> None:
    from sgbridge.journal.trace import find_seqs, trace

    events = [e for e in EventFactory(19).batch(6) if e["event"] != "deferred"]
    async with bridge_factory() as h:
        request_id = (await h.post(events)).json()["request_id"]
        await h.wait_delivered(len(events))
        journal = h.bridge.journal
        await _wait_for(lambda: journal.stats()["cursors"].get("segment", 0) >= journal.stats()["max_seq"])
        [seq] = find_seqs(journal, events[2]["sg_event_id"], ["default"])
        view = trace(journal, seq, ["segment"])
    assert view is not None
    assert view["event"]["sg_event_id"] == events[2]["sg_event_id"] and view["request"]["id"] == request_id
    segment = view["destinations"]["segment"]
    assert segment["outcome"] == "delivered"
    assert [a["status_code"] for a in segment["attempts"]] == [200]


async def test_a_send_longer_than_the_lease_keeps_its_claim(bridge_factory: BridgeFactory) -> None:
    """A claim whose lease ran out is taken over, by another process or another lane of this one.
    While a send is still under way (Segment answers after 4 s here, the lease is 1.5 s), the
    worker renews the lease, so the window is not sent a second time beside the first."""
    events = EventFactory(14).batch(20)
    async with bridge_factory(SGBRIDGE_DELIVERY__LEASE_SECONDS="1.5") as h:
        await h.fault({"delay": 4, "count": 1})
        await h.post(events)
        await anyio.sleep(3)  # the send is still waiting for Segment, past the lease
        assert await h.bridge.journal.claim_window("segment", "another-process", 100, 30) is None
        await h.wait_delivered(_forwardable(events))
        await anyio.sleep(2)  # past the slow answer: a second send would have arrived by now
        assert (h.segment.requests, h.segment.duplicates) == (1, 0)  # sent once
