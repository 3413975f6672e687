"""SendGrid events → warehouse tables (Segment's classic SendGrid source), through dlt."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import duckdb
import orjson
import pytest

from sgbridge.emulators.event_factory import EventFactory
from sgbridge.model import StoredEvent
from sgbridge.warehouse.loader import LoadRefused, Warehouse
from sgbridge.warehouse.tables import EVENT_TABLES
from tests.conftest import BridgeFactory, postgres_database

pytestmark = pytest.mark.anyio


def _rows(path: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql, params).fetchall()


async def _wait_loaded(h: Any, timeout: float = 30.0) -> None:
    journal = h.bridge.journal
    with anyio.fail_after(timeout):
        while True:
            stats = await journal.stats_async()
            if stats["cursors"].get("warehouse", 0) >= stats["max_seq"] > 0:
                return
            await anyio.sleep(0.05)


async def test_events_land_in_per_type_tables_and_activity(bridge_factory: BridgeFactory, tmp_path: Path) -> None:
    events = EventFactory(41).batch(400)
    async with bridge_factory(SGBRIDGE_WAREHOUSE__ENABLED="true", SGBRIDGE_WAREHOUSE__FLUSH_SECONDS="0.1") as h:
        assert (await h.post(events[:250])).status_code == 200
        assert (await h.post(events[250:] + events[:10])).status_code == 200  # with duplicates
        await _wait_loaded(h)
    warehouse = tmp_path / "sgbridge.duckdb"
    kinds = Counter(e["event"] for e in events)
    activity = _rows(warehouse, "SELECT count(*), count(DISTINCT sg_event_id), count(DISTINCT _dlt_load_id) "
                                "FROM sendgrid.activity")
    assert activity[0][:2] == (len(events), len(events))  # every event once: duplicates were removed
    assert activity[0][2] >= 1
    for kind, table in EVENT_TABLES.items():
        if kinds[kind]:
            assert _rows(warehouse, f"SELECT count(*) FROM sendgrid.{table}")[0][0] == kinds[kind], table
    click = next(e for e in events if e["event"] == "click")
    got = _rows(warehouse, "SELECT url, email, timestamp FROM sendgrid.click WHERE sg_event_id = ?",
                [click["sg_event_id"]])
    assert got == [(click["url"], click["email"], click["timestamp"])]
    columns = {r[0] for r in _rows(warehouse, "SELECT column_name FROM information_schema.columns "
                                              "WHERE table_schema = 'sendgrid' AND table_name = 'activity'")}
    assert {"sg_event_id", "event", "email", "timestamp", "category", "_dlt_load_id", "_sgbridge_seq"} <= columns
    assert "smtp_id" in columns  # SendGrid's "smtp-id", as dlt names it


def _with_password(url: str) -> str:
    """dlt's PostgreSQL credentials require a password; the test server trusts local connections."""
    return url.replace("postgresql://postgres@", "postgresql://postgres:unused@", 1)


def _sql_on_duckdb(path: Path) -> Callable[[str], list[tuple[Any, ...]]]:
    """Runs a statement on the DuckDB file (read-write: tests change tables under sgbridge)."""
    def run(sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(path)) as conn:
            return conn.execute(sql).fetchall()
    return run


def _sql_on_postgres(url: str) -> Callable[[str], list[tuple[Any, ...]]]:
    import psycopg

    def run(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(url) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []
    return run


def _stored(events: list[dict[str, Any]], source: str = "default", start: int = 1) -> list[StoredEvent]:
    return [StoredEvent(start + i, source, str(e["event"]), time.time(), b"k", orjson.dumps(e))
            for i, e in enumerate(events)]


def test_a_window_loaded_twice_is_appended_once(tmp_path: Path) -> None:
    """After a crash the journal delivers the last window again; the warehouse must not double it."""
    import dlt

    events = _stored(EventFactory(42).batch(120))
    path = tmp_path / "w.duckdb"

    def warehouse() -> Warehouse:  # a new process each time: nothing remembered in memory
        return Warehouse(dlt.destinations.duckdb(str(path)), tmp_path / "dlt")

    assert warehouse().loader("sendgrid").load(events[:80]) == 80
    assert warehouse().loader("sendgrid").load(events[40:]) == 40  # 40..79 are already there
    assert warehouse().loader("sendgrid").load(events) == 0
    assert _rows(path, "SELECT count(*), count(DISTINCT _sgbridge_seq) FROM sendgrid.activity") == [(120, 120)]


def test_nested_and_odd_values_keep_their_data(tmp_path: Path) -> None:
    import dlt

    odd = [
        {"event": "processed", "sg_event_id": "a", "email": "a@x.io", "timestamp": 1, "category": "single",
         "pool": {"name": "transactional", "id": 210}, "send_at": 0, "plan": "gold"},
        {"event": "processed", "sg_event_id": "b", "email": "b@x.io", "timestamp": "not-a-time",
         "category": ["one", "two"], "pool": {"name": "marketing", "id": 211}, "plan": 3},
        {"event": "account_status_change", "sg_event_id": "c", "timestamp": 3, "type": "compliance_suspend"},
    ]
    path = tmp_path / "w.duckdb"
    Warehouse(dlt.destinations.duckdb(str(path)), tmp_path / "dlt").loader("sendgrid").load(_stored(odd))
    rows = _rows(path, "SELECT sg_event_id, category, pool__name, pool__id, timestamp, timestamp__v_text, plan "
                       "FROM sendgrid.processed ORDER BY sg_event_id")
    assert [(r[0], orjson.loads(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
        ("a", ["single"], "transactional", 210, 1, None, "gold"),
        ("b", ["one", "two"], "marketing", 211, None, "not-a-time", "3"),
    ]
    assert _rows(path, "SELECT count(*) FROM sendgrid.activity") == [(3,)]  # unknown types: activity only


async def test_named_source_gets_its_own_dataset(bridge_factory: BridgeFactory, tmp_path: Path, keypair: Any) -> None:
    events = EventFactory(43).batch(30)
    async with bridge_factory(SGBRIDGE_WAREHOUSE__ENABLED="true", SGBRIDGE_WAREHOUSE__FLUSH_SECONDS="0.1",
                              SGBRIDGE_SOURCES__SENDGRID_PROD__PUBLIC_KEYS=keypair.public_key_base64) as h:
        assert (await h.post(events, path="/webhooks/sendgrid/sendgrid_prod")).status_code == 200
        await _wait_loaded(h)
    assert _rows(tmp_path / "sgbridge.duckdb", "SELECT count(*) FROM sendgrid_prod.activity") == [(30,)]


@pytest.fixture
def pg_warehouse() -> Iterator[str]:
    for url in postgres_database():
        yield _with_password(url)


@pytest.mark.postgres
async def test_postgres_warehouse(bridge_factory: BridgeFactory, pg_warehouse: str) -> None:
    import psycopg

    events = EventFactory(44).batch(150)
    async with bridge_factory(SGBRIDGE_WAREHOUSE__ENABLED="true", SGBRIDGE_WAREHOUSE__FLUSH_SECONDS="0.1",
                              SGBRIDGE_WAREHOUSE__DESTINATION="postgres",
                              SGBRIDGE_WAREHOUSE__CREDENTIALS=pg_warehouse) as h:
        assert (await h.post(events)).status_code == 200
        await _wait_loaded(h)
    with psycopg.connect(pg_warehouse) as conn:
        total = conn.execute("SELECT count(*) FROM sendgrid.activity").fetchone()
        opens = conn.execute("SELECT count(*) FROM sendgrid._open").fetchone()
    assert total == (150,)
    assert opens == (sum(1 for e in events if e["event"] == "open"),)


@pytest.mark.postgres
async def test_unavailable_warehouse_delays_and_loses_nothing(bridge_factory: BridgeFactory, tmp_path: Path,
                                                             pg_warehouse: str) -> None:
    events = EventFactory(45).batch(40)
    dead = "postgresql://postgres@127.0.0.1:1/nowhere"
    async with bridge_factory(SGBRIDGE_WAREHOUSE__ENABLED="true", SGBRIDGE_WAREHOUSE__FLUSH_SECONDS="0.1",
                              SGBRIDGE_WAREHOUSE__DESTINATION="postgres", SGBRIDGE_WAREHOUSE__CREDENTIALS=dead) as h:
        assert (await h.post(events)).status_code == 200
        await anyio.sleep(1.5)
        stats = await h.bridge.journal.stats_async()
        assert stats["cursors"].get("warehouse", 0) == 0  # nothing settled while the warehouse is down
    import psycopg

    async with bridge_factory(SGBRIDGE_WAREHOUSE__ENABLED="true", SGBRIDGE_WAREHOUSE__FLUSH_SECONDS="0.1",
                              SGBRIDGE_WAREHOUSE__DESTINATION="postgres",
                              SGBRIDGE_WAREHOUSE__CREDENTIALS=pg_warehouse) as h:
        await _wait_loaded(h)
    with psycopg.connect(pg_warehouse) as conn:
        assert conn.execute("SELECT count(*) FROM sendgrid.activity").fetchone() == (40,)


def test_fields_dlt_would_name_alike_all_load(tmp_path: Path) -> None:
    """``Email``/``email``, ``smtp-id``/a custom ``smtp_id``, an empty key: dlt refused such loads,
    so one such event held the warehouse back. Each field keeps its values, in a column of its own."""
    import dlt

    from sgbridge.warehouse.tables import _second_name

    odd = [
        {"event": "open", "sg_event_id": "a", "smtp-id": "<m@x>", "smtp_id": "custom", "": "blank"},
        {"event": "open", "sg_event_id": "b", "Email": "Upper@x.io", "email": "lower@x.io"},
        {"event": "open", "sg_event_id": "c", "Email": "only@x.io", "Timestamp": 5},
    ]
    path = tmp_path / "w.duckdb"
    assert Warehouse(dlt.destinations.duckdb(str(path)), tmp_path / "dlt").loader("sendgrid").load(_stored(odd)) == 3
    smtp, mail = _second_name("smtp_id", "smtp-id"), _second_name("email", "Email")
    stamp = _second_name("timestamp", "Timestamp")
    rows = _rows(path, f"SELECT sg_event_id, smtp_id, {smtp}, _unnamed, email, {mail}, {stamp} FROM sendgrid._open "
                       "ORDER BY sg_event_id")
    assert rows == [("a", "custom", "<m@x>", "blank", None, None, None),
                    ("b", None, None, None, "lower@x.io", "Upper@x.io", None),
                    ("c", None, None, None, None, "only@x.io", "5")]


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """(a dlt destination, a function running SQL on it): DuckDB, and PostgreSQL, which takes at
    most 1,600 columns per table."""
    import dlt

    if request.param == "duckdb":
        path = tmp_path / "w.duckdb"
        yield dlt.destinations.duckdb(str(path)), _sql_on_duckdb(path)
        return
    for url in postgres_database():
        yield dlt.destinations.postgres(_with_password(url)), _sql_on_postgres(_with_password(url))


def test_fields_past_the_column_limit_go_to_the_overflow_column(any_warehouse: tuple[Any, Any],
                                                                tmp_path: Path) -> None:
    """An event with 1,700 custom args once blocked PostgreSQL loads for good (dlt tried to add
    the columns again before every load). Now the table stops at ``MAX_COLUMNS``: every field past
    it is kept in ``_sgbridge_overflow``, and later loads go on."""
    from sgbridge.warehouse.tables import MAX_COLUMNS, OVERFLOW

    destination, query = any_warehouse
    plain = EventFactory(46).batch(6)
    wide = {**plain[0], "sg_event_id": "wide", **{f"arg_{i}": f"v{i}" for i in range(1_700)}}
    loader = Warehouse(destination, tmp_path / "dlt").loader("sendgrid")
    assert loader.load(_stored([*plain[:3], wide])) == 4
    later = [{**plain[3], "smtp-id": "<late@x>", "bounce_classification": "Reputation", "arg_5": "again",
              "late_arg": "late"}, *plain[4:]]
    assert loader.load(_stored(later, start=5)) == 3

    columns = {r[0] for r in query("SELECT column_name FROM information_schema.columns "
                                   "WHERE table_schema = 'sendgrid' AND table_name = 'activity'")}
    assert len(columns) < 1_000  # SQL Server takes 1,024, PostgreSQL 1,600
    arg_columns = sorted(c for c in columns if c.startswith("arg_"))
    assert MAX_COLUMNS - 50 < len(arg_columns) < MAX_COLUMNS and OVERFLOW in columns
    picked = ", ".join([OVERFLOW, *arg_columns])
    row = query(f"SELECT {picked} FROM sendgrid.activity WHERE sg_event_id = 'wide'")[0]
    kept = {**dict(zip(arg_columns, row[1:], strict=True)), **orjson.loads(row[0])}
    assert kept == {f"arg_{i}": f"v{i}" for i in range(1_700)}  # every field, in a column or the overflow
    again = query(f"SELECT arg_5, smtp_id, bounce_classification, {OVERFLOW} FROM sendgrid.activity "
                  f"WHERE sg_event_id = '{later[0]['sg_event_id']}'")[0]
    # The table is full: a new custom arg overflows, SendGrid's own fields still get their columns.
    assert again[:3] == ("again", "<late@x>", "Reputation")
    assert orjson.loads(again[3])["late_arg"] == "late"
    assert query("SELECT count(*) FROM sendgrid.activity") == [(7,)]


def test_a_nul_character_does_not_stop_the_warehouse(any_warehouse: tuple[Any, Any], tmp_path: Path) -> None:
    """PostgreSQL's text cannot hold NUL (JSON's \\u0000): one such value failed the load, and dlt
    retried that load before every later one, for good. It becomes U+FFFD, the replacement character."""
    destination, query = any_warehouse
    plain = EventFactory(47).batch(4)
    odd = {**plain[0], "sg_event_id": "nul", "email": "a\x00b@x.io", "note\x00": "x\x00y", "path": "c:\\u0000"}
    loader = Warehouse(destination, tmp_path / "dlt").loader("sendgrid")
    assert loader.load(_stored([odd, plain[1]])) == 2
    assert loader.load(_stored(plain[2:], start=3)) == 2
    from sgbridge.warehouse.tables import column_name

    note = column_name("note\ufffd")  # the key's NUL replaced too, then named as dlt names it
    rows = query(f"SELECT email, {note}, path FROM sendgrid.activity WHERE sg_event_id = 'nul'")
    assert rows == [("a\ufffdb@x.io", "x\ufffdy", "c:\\u0000")]  # an escaped backslash is left alone
    assert query("SELECT count(*) FROM sendgrid.activity") == [(4,)]


def test_a_refused_load_neither_blocks_later_loads_nor_leaves_rows_behind(any_warehouse: tuple[Any, Any],
                                                                         tmp_path: Path) -> None:
    """A table refuses its rows (here, a column changed under sgbridge). On PostgreSQL, dlt kept
    that load pending and tried it before every later load, so nothing loaded any more. A load's
    tables are separate jobs, and when a load was given up, the tables that had taken their rows
    kept them: on DuckDB the window's open events then never reached ``_open``. Now later loads go
    on, and once the table is fixed every table holds every event exactly once."""
    from dlt.pipeline.exceptions import PipelineStepFailed

    destination, sql = any_warehouse
    events = EventFactory(48).batch(60)
    window, later = events[20:40], [e for e in events[40:] if e["event"] != "open"]
    assert any(e["event"] == "open" for e in events[:20]) and any(e["event"] == "open" for e in window)
    loader = Warehouse(destination, tmp_path / "dlt").loader("sendgrid")
    assert loader.load(_stored(events[:20])) == 20
    sql("ALTER TABLE sendgrid._open ALTER sg_event_id TYPE INTEGER USING 0")
    with pytest.raises((PipelineStepFailed, LoadRefused)):
        loader.load(_stored(window, start=21))
    assert loader.load(_stored(later, start=41)) == len(later)  # no open event: nothing refuses these
    sql("ALTER TABLE sendgrid._open ALTER sg_event_id TYPE VARCHAR")
    loader.load(_stored(window, start=21))  # the window, retried from the journal

    events = events[:40] + later

    kinds = Counter(e["event"] for e in events)
    assert sql("SELECT count(*), count(DISTINCT _sgbridge_seq) FROM sendgrid.activity") == [(len(events),) * 2]
    for kind, table in EVENT_TABLES.items():
        if kinds[kind]:
            assert sql(f"SELECT count(*), count(DISTINCT _sgbridge_seq) FROM sendgrid.{table}") == [
                (kinds[kind], kinds[kind])], table


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_an_event_the_warehouse_refuses_is_set_aside_and_the_rest_loads(
        kind: str, bridge_factory: BridgeFactory, tmp_path: Path) -> None:
    """A window the warehouse refuses because of one event (here the operator narrowed a column to
    SMALLINT, and one event's value does not fit) used to wait, and every window behind it, until
    the maximum age (3 days). Now the window is split down to that event, which is rejected (a dead
    letter, with the warehouse's reason), and the others load, each once."""
    env = {"SGBRIDGE_WAREHOUSE__ENABLED": "true", "SGBRIDGE_WAREHOUSE__FLUSH_SECONDS": "0.1"}
    sql = _sql_on_duckdb(tmp_path / "sgbridge.duckdb")
    if kind == "postgres":
        url = _with_password(next(iter(pg_database := postgres_database())))
        env |= {"SGBRIDGE_WAREHOUSE__DESTINATION": "postgres", "SGBRIDGE_WAREHOUSE__CREDENTIALS": url}
        sql = _sql_on_postgres(url)

    first, second = EventFactory(49).batch(40), EventFactory(50).batch(60)
    poison = {**second[17], "asm_group_id": 100_000}  # fits BIGINT, not the narrowed column
    second[17] = poison
    try:
        async with bridge_factory(**env) as h:
            assert (await h.post(first)).status_code == 200
            await _wait_loaded(h)
        sql("ALTER TABLE sendgrid.activity ALTER asm_group_id TYPE SMALLINT")
        async with bridge_factory(**env) as h:
            assert (await h.post(second)).status_code == 200
            await _wait_loaded(h, timeout=120)
            dead = h.bridge.journal.dead_letters("warehouse")

        assert [d["sg_event_id"] for d in dead] == [poison["sg_event_id"]]
        assert "refused" in dead[0]["reason"] and dead[0]["status"] == "rejected"
        loaded = sql("SELECT sg_event_id FROM sendgrid.activity")
        expected = [e["sg_event_id"] for e in first + second if e is not poison]
        assert sorted(r[0] for r in loaded) == sorted(expected)  # every other event, once
        for table in {EVENT_TABLES[e["event"]] for e in second if e["event"] in EVENT_TABLES}:
            ids = [r[0] for r in sql(f"SELECT sg_event_id FROM sendgrid.{table}")]
            assert len(ids) == len(set(ids)) and poison["sg_event_id"] not in ids, table
    finally:
        if kind == "postgres":
            pg_database.close()  # drops the database (the generator's cleanup)


async def test_a_warehouse_that_refuses_everything_rejects_nothing(bridge_factory: BridgeFactory,
                                                                   tmp_path: Path) -> None:
    """Refused one by one with nothing loaded is no proof against an event: a warehouse that takes
    nothing (here every event's id no longer fits its column) delays the window; once it is fixed,
    everything loads."""
    env = {"SGBRIDGE_WAREHOUSE__ENABLED": "true", "SGBRIDGE_WAREHOUSE__FLUSH_SECONDS": "0.1"}
    sql = _sql_on_duckdb(tmp_path / "sgbridge.duckdb")
    first, second = EventFactory(51).batch(10), EventFactory(52).batch(30)
    async with bridge_factory(**env) as h:
        assert (await h.post(first)).status_code == 200
        await _wait_loaded(h)
    sql("ALTER TABLE sendgrid.activity ALTER sg_event_id TYPE INTEGER USING 0")
    async with bridge_factory(**env) as h:
        assert (await h.post(second)).status_code == 200
        await anyio.sleep(6)  # several searches: backoff is at most 0.5 s in tests
        assert h.bridge.journal.dead_letters("warehouse") == []
        stats = await h.bridge.journal.stats_async()
        assert stats["cursors"].get("warehouse", 0) == len(first)  # the window waits
    sql("ALTER TABLE sendgrid.activity ALTER sg_event_id TYPE VARCHAR")
    async with bridge_factory(**env) as h:
        await _wait_loaded(h)
    assert sql("SELECT count(*), count(DISTINCT _sgbridge_seq) FROM sendgrid.activity") == [(40, 40)]


def test_the_warehouse_gives_arrow_memory_back_between_loads() -> None:
    """Arrow's buffers come from the C allocator, trimmed after each load: with the bundled
    mimalloc the warehouse process stayed at its peak RSS between loads (docs/benchmarks.md)."""
    import platform

    import pyarrow as pa

    from sgbridge.warehouse import loader

    assert pa.default_memory_pool().backend_name == "system"
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert loader._MALLOC_TRIM is not None
