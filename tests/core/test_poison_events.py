"""One event a destination cannot prepare or send is rejected alone; the rest of its window goes on.

A fuzz run left the Segment destination's cursor for good behind one deeply nested stored event
(orjson writes 254 levels, reads 1,024), and the warehouse retrying a window for a stored
``1e400``. The inbound parsers refuse such input at the door now; the delivery engine is the
second line of defence, so these tests write the events into the journal directly.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from sgbridge.emulators.event_factory import EventFactory
from sgbridge.journal import Journal
from sgbridge.model import InboundEvent, InboundRequest
from tests.actions.harness import actions_bridge, write_config
from tests.conftest import BridgeFactory

pytestmark = pytest.mark.anyio

NESTED = b"[" * 300 + b"]" * 300  # orjson reads it, and cannot write it back


def _event(source: str, event_type: str, body: bytes, ref: str) -> InboundEvent:
    key = hashlib.blake2b(source.encode() + b"\0" + ref.encode(), digest_size=16).digest()
    return InboundEvent(source, event_type, key, hashlib.blake2b(body, digest_size=16).digest(), body)


async def _store(journal: Journal, source: str, events: list[InboundEvent]) -> None:
    result = await journal.append(InboundRequest(source, time.time(), sum(len(e.body) for e in events), events))
    assert result.accepted == len(events)


def _sendgrid(events: list[dict[str, Any]], poison: dict[int, bytes]) -> list[InboundEvent]:
    """SendGrid events as stored; ``poison``: index → raw JSON put into that event's ``odd`` field."""
    stored = []
    for i, event in enumerate(events):
        body = orjson.dumps(event)
        if i in poison:
            body = body[:-1] + b',"odd":' + poison[i] + b"}"
        stored.append(_event("default", event["event"], body, event["sg_event_id"]))
    return stored


async def _until(predicate: Any, timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while not await predicate():
            await anyio.sleep(0.05)


async def _at_end(journal: Journal, destination: str) -> bool:
    stats = await journal.stats_async()
    return bool(stats["cursors"].get(destination, 0) >= stats["max_seq"] > 0)


async def test_segment_rejects_a_nested_event_alone_and_delivers_the_rest(bridge_factory: BridgeFactory,
                                                                          database_url: str) -> None:
    events = [e for e in EventFactory(71).batch(40) if e["event"] != "deferred"]
    async with bridge_factory(database_url) as h:
        journal = h.bridge.journal
        await _store(journal, "default", _sendgrid(events, {7: NESTED}))
        await _until(lambda: _at_end(journal, "segment"))
        dead = journal.dead_letters("segment")
        delivered = {m["properties"]["sg_event_id"] for m in h.segment.messages()}
    assert [d["sg_event_id"] for d in dead] == [events[7]["sg_event_id"]]
    assert "could not prepare this event for segment" in dead[0]["reason"]
    assert "Recursion limit" in dead[0]["reason"]
    assert delivered == {e["sg_event_id"] for i, e in enumerate(events) if i != 7}


# A nested custom field makes the mapping recurse past Python's limit (1,000 levels), or orjson's
# (254) while the payload is built.
CONTACTS = """
[[actions.sendgrid.subscriptions]]
action = "updateUserProfile"
trigger = 'type = "identify"'
mapping = { customFields = { "@path" = "$.traits.custom" } }
"""
DEEP = b"[" * 1000 + b"]" * 1000


def _identify(n: int, traits: bytes = b"") -> InboundEvent:
    event = {"type": "identify", "userId": f"u{n}", "messageId": f"poison-{n}",
             "traits": {"email": f"user{n}@example.com", "first_name": f"F{n}"}}
    body = orjson.dumps(event)
    if traits:
        body = body[:-2] + b',"custom":{"odd":' + traits + b"}}}"
    return _event("segment:api", "identify", body, event["messageId"])


@pytest.mark.parametrize("odd", [NESTED, DEEP], ids=["300-levels", "1000-levels"])
async def test_an_action_destination_rejects_a_poison_event_alone(tmp_path: Path, database_url: str,
                                                                  monkeypatch: Any, odd: bytes) -> None:
    config = write_config(tmp_path / "c.toml", CONTACTS)
    async with actions_bridge(config, database_url, monkeypatch) as h:
        journal = h.app.state.bridge.journal
        await _store(journal, "segment:api", [_identify(i, odd if i == 5 else b"") for i in range(20)])
        await _until(lambda: _at_end(journal, "sendgrid"))
        dead = journal.dead_letters("sendgrid")
        contacts = await h.emulator("contacts")
    assert [d["seq"] for d in dead] == [6]
    assert "could not prepare this event for sendgrid" in dead[0]["reason"]
    assert "Recursion" in dead[0]["reason"] or "recursion" in dead[0]["reason"]
    emails = {c["email"] for c in contacts["contacts"]}
    assert emails == {f"user{i}@example.com" for i in range(20) if i != 5}


def _duckdb_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


async def test_the_warehouse_rejects_values_it_cannot_read_alone(bridge_factory: BridgeFactory, database_url: str,
                                                                 tmp_path: Path) -> None:
    """Several events of one window with a number no double holds (``1e400``, which orjson refuses
    to read): the search for them used to run out of its budget after two or three, and the window
    waited for good. Each is rejected alone now, and every other event of the window loads."""
    events = EventFactory(72).batch(600)
    poison = {40: b"1e400", 41: b"-1e400", 333: b"[1e400]", 590: b'{"x":1e999}'}
    env = {"SGBRIDGE_WAREHOUSE__ENABLED": "true", "SGBRIDGE_WAREHOUSE__FLUSH_SECONDS": "0.1",
           "SGBRIDGE_WAREHOUSE__CREDENTIALS": str(tmp_path / "w.duckdb"),
           "SGBRIDGE_WAREHOUSE__PIPELINES_DIR": str(tmp_path / "dlt"), "SEGMENT_WRITE_KEY": None}
    async with bridge_factory(database_url, **env) as h:
        journal = h.bridge.journal
        await _store(journal, "default", _sendgrid(events, poison))
        await _until(lambda: _at_end(journal, "warehouse"), timeout=120)
        dead = journal.dead_letters("warehouse")
    assert sorted(d["sg_event_id"] for d in dead) == sorted(events[i]["sg_event_id"] for i in poison)
    assert all("number is infinity when parsed as double" in d["reason"] for d in dead)
    loaded = _duckdb_rows(tmp_path / "w.duckdb", "SELECT sg_event_id FROM sendgrid.activity")
    assert sorted(r[0] for r in loaded) == sorted(e["sg_event_id"] for i, e in enumerate(events) if i not in poison)


class _Picky:
    """A batch destination (the protocol's, as a plug-in would write it) whose ``send`` raises:
    ``TypeError`` for any batch holding the poison seq, ``ConnectionResetError`` (transient) the
    first ``flaky`` times it sends the seq beside it alone."""

    name = "picky"
    stream = 0

    def __init__(self, poison: int, flaky: int) -> None:
        self.poison, self.neighbour, self.flaky = poison, poison + 1, flaky
        self.taken: list[int] = []

    def consumes(self, source: str) -> bool:
        return True

    def prepare(self, events: list[Any]) -> tuple[list[Any], list[Any]]:
        from sgbridge.destinations.warehouse import LoadBatch

        return [LoadBatch(list(events))], []

    def split(self, batch: Any) -> list[Any]:
        from sgbridge.destinations.warehouse import LoadBatch

        half = len(batch.messages) // 2
        return [LoadBatch(batch.messages[:half]), LoadBatch(batch.messages[half:])]

    async def send(self, batch: Any) -> Any:
        from sgbridge.outcomes import Delivered

        seqs = [m.seq for m in batch.messages]
        if self.poison in seqs:
            raise TypeError("Recursion limit reached")
        if seqs == [self.neighbour] and self.flaky > 0:
            self.flaky -= 1
            raise ConnectionResetError("connection reset by peer")
        self.taken.extend(seqs)
        return Delivered()


async def test_a_send_that_raises_is_searched_and_a_transient_fault_rejects_nothing(database_url: str) -> None:
    from sgbridge.delivery.worker import DeliveryWorker
    from sgbridge.settings import DeliverySettings

    journal = Journal(database_url)
    try:
        events = EventFactory(73).batch(16)
        await _store(journal, "default", _sendgrid(events, {}))
        destination = _Picky(poison=9, flaky=5)  # seq 10 is loaded alone next to 9, and fails 5 times
        settings = DeliverySettings(backoff_initial_seconds=0.01, backoff_max_seconds=0.05, concurrency=1)
        worker = DeliveryWorker(journal, destination, settings)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(worker.run)
            await _until(lambda: _at_end(journal, "picky"))
            worker.stop()
        dead = journal.dead_letters("picky")
    finally:
        journal.close()
    assert [(d["seq"], d["reason"]) for d in dead] == [
        (9, "sending failed: TypeError: Recursion limit reached (refused alone, twice)")]
    assert sorted(destination.taken) == [s for s in range(1, 17) if s != 9]
    assert destination.flaky == 0
