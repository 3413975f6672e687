"""Events → warehouse rows: the columns and values each event gets, whatever odd shape it has.

The rows are built column by column for speed; this checks them against the rule stated event by
event (``expected_row``), for generated events with every kind of JSON value.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sgbridge.model import StoredEvent
from sgbridge.warehouse.tables import ACTIVITY, EVENT_TABLES, MAX_COLUMNS, OVERFLOW, TOO_DEEP, tables_for

INTEGER_FIELDS = {"timestamp", "tls", "asm_group_id", "marketing_campaign_id", "pool__id", "url_offset__index"}


def _nul_replaced(value: Any) -> Any:
    """NUL characters, which PostgreSQL's text cannot hold, replaced by U+FFFD (keys too)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_nul_replaced(k): _nul_replaced(v) for k, v in value.items()}
    return [_nul_replaced(v) for v in value] if isinstance(value, list) else value


def expected_row(event: dict[str, Any], prefix: str = "", depth: int = 1) -> dict[str, Any]:
    """The warehouse columns of one event, as docs/warehouse.md states them."""
    if depth == 1:
        event = _nul_replaced(event)
    row: dict[str, Any] = {}
    for key, value in event.items():
        name = prefix + key
        if value is None:
            continue
        if isinstance(value, dict) and value and depth < 16:
            row.update(expected_row(value, name + "__", depth + 1))  # nested objects: parent__child
        elif name == "category":
            row[name] = orjson.dumps(value if isinstance(value, list) else [value]).decode()
        elif name in INTEGER_FIELDS:
            whole = value if type(value) is int else None
            if isinstance(value, bool) or (isinstance(value, float) and value.is_integer()):
                whole = int(value)
            elif isinstance(value, str) and value.strip().lstrip("-").isdecimal():
                whole = int(value.strip())
            if whole is None or not -(2**63) <= whole < 2**63:  # beyond BIGINT: kept as text
                row[name + "__v_text"] = value if isinstance(value, str) else orjson.dumps(value).decode()
            else:
                row[name] = whole
        elif name == "sg_machine_open":
            if isinstance(value, bool):
                row[name] = value
            else:
                row[name + "__v_text"] = value if isinstance(value, str) else orjson.dumps(value).decode()
        else:
            row[name] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return row


_names = st.sampled_from(["email", "timestamp", "tls", "category", "sg_machine_open", "asm_group_id", "url",
                          "send_at", "plan", "user_id", "marketing_campaign_id", "ip"])
# integers: the range orjson writes (beyond it, it reads floats: covered by the floats)
_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
            | st.floats(allow_nan=False, allow_infinity=False, width=32) | st.text(max_size=8)
            | st.sampled_from(["12", " 7 ", "-3", "x1", "a\x00b", "\\u0000", "\\\x00"]))
_values = _scalars | st.lists(_scalars, max_size=3) | st.dictionaries(st.sampled_from(["id", "name", "index"]),
                                                                       _scalars, max_size=2)
_events = st.fixed_dictionaries(
    {"event": st.sampled_from([*EVENT_TABLES, "account_status_change"]), "sg_event_id": st.uuids().map(str)},
    optional={"pool": st.fixed_dictionaries({}, optional={"name": _values, "id": _values}) | _scalars,
              "url_offset": st.fixed_dictionaries({}, optional={"index": _values, "type": _values})},
).flatmap(lambda base: st.dictionaries(_names, _values, max_size=6).map(lambda extra: {**extra, **base}))


def _stored(bodies: list[Any]) -> list[StoredEvent]:
    return [StoredEvent(i + 1, "default", "x", time.time(), b"k", orjson.dumps(b)) for i, b in enumerate(bodies)]


@settings(max_examples=60, deadline=None)
@given(st.lists(_events, min_size=1, max_size=40))
def test_every_event_becomes_its_row(events: list[dict[str, Any]]) -> None:
    stored = _stored(events)
    tables = tables_for(stored)
    activity = tables[ACTIVITY].to_pylist()
    assert [r["_sgbridge_seq"] for r in activity] == [s.seq for s in stored]
    for event, row in zip(events, activity, strict=True):
        got = {k: v for k, v in row.items() if v is not None and not k.startswith("_sgbridge_")}
        assert got == expected_row(event)
    for kind, name in EVENT_TABLES.items():
        seqs = [s.seq for s, e in zip(stored, events, strict=True) if e["event"] == kind]
        if seqs:
            assert tables[name]["_sgbridge_seq"].to_pylist() == seqs
            assert tables[name].num_rows == len(seqs)
        else:
            assert name not in tables


def test_bodies_that_are_not_objects_still_get_a_row() -> None:
    tables = tables_for(_stored([[1, 2], "text", {"event": "open", "email": "a@x.io"}]))
    assert tables[ACTIVITY].num_rows == 3
    assert tables[ACTIVITY]["email"].to_pylist() == [None, None, "a@x.io"]
    assert tables["_open"].num_rows == 1


def test_an_event_cannot_overwrite_the_journal_or_dlt_columns_and_keeps_its_fields() -> None:
    event = {"event": "open", "_sgbridge_seq": 99, "_sgbridge_source": "forged", "_dlt_load_id": "mine",
             "_dlt_id": "x"}
    row = tables_for(_stored([event, {"event": "open"}]))[ACTIVITY].to_pylist()[0]
    assert (row["_sgbridge_seq"], row["_sgbridge_source"]) == (1, "default")
    assert "_dlt_load_id" not in row and "_dlt_id" not in row  # dlt's own columns (it adds the load id)
    kept = {key.split("__dup_")[0]: value for key, value in row.items() if "__dup_" in key}
    assert kept == {"_sgbridge_seq": "99", "_sgbridge_source": "forged", "_dlt_load_id": "mine", "_dlt_id": "x"}


def test_deeply_nested_objects_are_flattened_16_levels_then_kept_as_json() -> None:
    """JSON allows 1,024 levels; flattening them all once failed the whole window at every retry."""
    def nested(levels: int) -> bytes:
        return b'{"event":"open","email":"a@x.io","x":' + b'{"a":' * levels + b"1" + b"}" * levels + b"}"

    column = "x" + "__a" * 15  # 16 names deep: the object there stays JSON text
    rows = tables_for([StoredEvent(i + 1, "default", "open", time.time(), b"k", nested(levels))
                       for i, levels in enumerate([100, 1000])])[ACTIVITY].to_pylist()
    assert orjson.loads(rows[0][column]) == orjson.loads(b'{"a":' * 85 + b"1" + b"}" * 85)  # 100 - 15
    assert rows[1][column] == TOO_DEEP  # deeper than orjson writes: the journal keeps the event
    assert [r["email"] for r in rows] == ["a@x.io", "a@x.io"]
    deep_category = b'{"event":"open","category":' + b"[" * 500 + b"]" * 500 + b"}"
    row = tables_for([StoredEvent(1, "default", "open", time.time(), b"k", deep_category)])[ACTIVITY].to_pylist()[0]
    assert row["category"] == TOO_DEEP


def test_a_full_table_keeps_new_custom_args_in_the_overflow_object() -> None:
    full = {f"old_{i}" for i in range(MAX_COLUMNS)}
    event = {"event": "bounce", "email": "a@x.io", "old_3": "kept", "new_arg": "n", "nested": {"deep": 1},
             "bounce_classification": "Reputation", OVERFLOW: "an event's own field of that name"}
    in_use = set(full)
    row = tables_for(_stored([event, {"event": "open"}]), in_use)[ACTIVITY].to_pylist()
    assert row[0]["old_3"] == "kept" and row[0]["bounce_classification"] == "Reputation"  # SendGrid's field
    assert orjson.loads(row[0][OVERFLOW]) == {"new_arg": "n", "nested__deep": "1",
                                               OVERFLOW: "an event's own field of that name"}
    assert row[1][OVERFLOW] is None
    assert "new_arg" not in row[0] and in_use - full == {"email", "event", "bounce_classification", OVERFLOW,
                                                         "_sgbridge_seq", "_sgbridge_source", "_sgbridge_received_at"}
