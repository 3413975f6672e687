"""The search for an event the warehouse refuses, against faults injected in a real PostgreSQL.

The search halves a refused window down to single events. A transient fault that struck exactly
at a single good event's load (three failures in a row: the load, dlt finishing it, the load
afresh) made a dead letter of that event while SQL still answered. Now a fault of the machine (a
statement timeout, out of memory, a connection cut: delivery/faults.py) is retried and never
rejects anything; a refusal rejects an event only when it refused that event alone, twice, the
same way, and took other parts of the window.
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
from sgbridge.model import InboundEvent, InboundRequest, StoredEvent
from sgbridge.warehouse.loader import LoadRefused, Warehouse
from tests.conftest import BridgeFactory, postgres_database

pytestmark = pytest.mark.anyio


def _with_password(url: str) -> str:
    return url.replace("postgresql://postgres@", "postgresql://postgres:unused@", 1)


def _sql(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def _stored(events: list[dict[str, Any]], odd: dict[int, bytes]) -> list[InboundEvent]:
    out = []
    for i, event in enumerate(events):
        body = orjson.dumps(event)
        if i in odd:
            body = body[:-1] + b',"odd":' + odd[i] + b"}"
        key = hashlib.blake2b(b"default\0" + event["sg_event_id"].encode(), digest_size=16).digest()
        out.append(InboundEvent("default", event["event"], key, hashlib.blake2b(body, digest_size=16).digest(), body))
    return out


# Rows of ``slow`` sleep past the statement timeout (as long as the sequence has not run out: a
# sequence, because the cancelled statement's own writes are rolled back); rows of ``bad`` are
# always refused, as a check constraint would.
TRIGGER = """
CREATE SEQUENCE sgbridge_test_faults;
CREATE FUNCTION sgbridge_test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sg_event_id = '{slow}' AND nextval('sgbridge_test_faults') <= {times} THEN
        PERFORM pg_sleep(2);
    END IF;
    IF NEW.sg_event_id = '{bad}' THEN
        RAISE EXCEPTION 'row refused by the test trigger';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sgbridge_test_fault BEFORE INSERT ON sendgrid.activity
    FOR EACH ROW EXECUTE FUNCTION sgbridge_test_fault();
ALTER DATABASE "{database}" SET statement_timeout = '700ms';
"""


@pytest.mark.postgres
async def test_a_timeout_at_a_single_events_load_rejects_nothing_and_a_refusal_rejects_one(
        bridge_factory: BridgeFactory) -> None:
    for url in postgres_database():
        url = _with_password(url)
        env = {"SGBRIDGE_WAREHOUSE__ENABLED": "true", "SGBRIDGE_WAREHOUSE__FLUSH_SECONDS": "0.1",
               "SGBRIDGE_WAREHOUSE__DESTINATION": "postgres", "SGBRIDGE_WAREHOUSE__CREDENTIALS": url,
               "SEGMENT_WRITE_KEY": None}
        first, events = EventFactory(81).batch(4), EventFactory(82).batch(8)
        # The window of 8 is halved to [4, 5]: event 4 cannot be read (1e400), and event 5 is loaded
        # alone, when its loads time out eight times in a row. Event 1 is refused by the table.
        slow, bad = events[5]["sg_event_id"], events[1]["sg_event_id"]
        async with bridge_factory(**env) as h:
            journal = h.bridge.journal
            await journal.append(InboundRequest("default", time.time(), 1, _stored(first, {})))
            with anyio.fail_after(60):
                while (await journal.stats_async())["cursors"].get("warehouse", 0) < 4:
                    await anyio.sleep(0.05)
        database = url.rsplit("/", 1)[1]
        _sql(url, TRIGGER.format(slow=slow, bad=bad, times=8, database=database))
        async with bridge_factory(**env) as h:
            journal = h.bridge.journal
            await journal.append(InboundRequest("default", time.time(), 1, _stored(events, {4: b"1e400"})))
            with anyio.fail_after(120):
                while (await journal.stats_async())["cursors"].get("warehouse", 0) < 12:
                    await anyio.sleep(0.05)
            dead = {d["sg_event_id"]: d["reason"] for d in journal.dead_letters("warehouse")}
        assert sorted(dead) == sorted([events[4]["sg_event_id"], bad])
        assert "row refused by the test trigger" in dead[bad]
        loaded = sorted(r[0] for r in _sql(url, "SELECT sg_event_id FROM sendgrid.activity"))
        assert loaded == sorted(e["sg_event_id"] for e in first + events if e["sg_event_id"] not in dead)
        assert slow in loaded
        assert _sql(url, "SELECT last_value FROM sgbridge_test_faults")[0][0] >= 8  # the faults happened


def test_a_failed_extract_leaves_no_folder_behind(tmp_path: Path) -> None:
    """dlt writes each extract in a folder of its own under ``<pipeline>/normalize/`` and leaves it
    when the extract fails: a window refused at every retry left one more folder each time."""
    import dlt

    events = EventFactory(83).batch(6)
    stored = [StoredEvent(i + 1, "default", e["event"], time.time(), b"k", body.body)
              for i, (e, body) in enumerate(zip(events, _stored(events, {2: b"1e400"}), strict=True))]
    loader = Warehouse(dlt.destinations.duckdb(str(tmp_path / "w.duckdb")), tmp_path / "dlt").loader("sendgrid")
    for _ in range(3):
        with pytest.raises(LoadRefused, match="infinity"):
            loader.load(stored)
    assert loader.load([e for e in stored if e.seq != 3]) == 5
    normalize = tmp_path / "dlt" / "sgbridge_sendgrid" / "normalize"
    assert sorted(p.name for p in normalize.iterdir() if p.is_dir()) == ["extracted"]
    assert list((normalize / "extracted").iterdir()) == []
