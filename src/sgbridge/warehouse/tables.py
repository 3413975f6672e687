"""SendGrid events as warehouse rows: which table, which columns, which types.

Tables follow Segment's classic SendGrid source (seed 001): one append-only table per event type
(``_open``, ``click``, ``bounce``, ``delivered``, ``processed``, ``dropped``, ``deferred``,
``unsubscribe``, ``spam_report``, plus ``group_unsubscribe`` and ``group_resubscribe``) and
``activity``, the union of all. Columns are SendGrid's fields. Nested objects are flattened the
dlt way (``pool`` → ``pool__name``, ``pool__id``), up to ``MAX_NESTING`` levels. ``category`` is
always a JSON array (as text: dlt's CSV loaders take no list columns), because SendGrid sends a
string or an array.

Rows become Arrow tables with a fixed type per known field. dlt loads Arrow tables about 30 times
faster than Python dicts (1.31 here: 100,000 rows in 0.8 s against 29 s). A value that does not
fit its field's type goes to a ``<field>__v_text`` column, as dlt's variant columns do. Custom
args (any other top-level key) are text; JSON text when they are not strings.

A table gets columns for at most ``MAX_COLUMNS`` fields (SendGrid's own always get theirs). Fields
past the limit go to ``_sgbridge_overflow``, one JSON object per row (see ``MAX_COLUMNS``).

Speed: the batch is built column by column (one Python list per column, filled by row index) and
turned into one Arrow table, ``activity``; the per-type tables are filters of it, done by Arrow in
C++. Building rows as dicts and converting each table separately cost five times as much.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.naming.snake_case import NamingConvention as SnakeCaseNaming

from sgbridge.model import StoredEvent

EVENT_TABLES = {
    "processed": "processed", "delivered": "delivered", "deferred": "deferred", "bounce": "bounce",
    "dropped": "dropped", "click": "click", "open": "_open", "unsubscribe": "unsubscribe",
    "spamreport": "spam_report", "group_unsubscribe": "group_unsubscribe", "group_resubscribe": "group_resubscribe",
}
ACTIVITY = "activity"
TABLES = (*dict.fromkeys(EVENT_TABLES.values()), ACTIVITY)

_INT = pa.int64()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TEXT = pa.string()
_BOOL = pa.bool_()
KNOWN_TYPES: dict[str, pa.DataType] = {
    "timestamp": _INT, "tls": _INT, "asm_group_id": _INT, "marketing_campaign_id": _INT,
    "marketing_campaign_split_id": _INT, "pool__id": _INT, "url_offset__index": _INT, "sg_user_id": _INT,
    "sg_machine_open": _BOOL,
    "_sgbridge_seq": _INT, "_sgbridge_received_at": pa.float64(),
}
_NOT_PLAIN_TEXT = frozenset(KNOWN_TYPES) | {"category"}  # fields a string value cannot go to as it is
# Nested objects are flattened this many levels deep; deeper ones stay JSON text in their column.
# (orjson reads up to 1,024 levels: flattening them all overran Python's recursion limit and failed
# the whole window, again at every retry.)
MAX_NESTING = 16
# Fields that lead each table, in this order; the others follow as first seen.
LEADING = ("_sgbridge_seq", "sg_event_id", "event", "email", "timestamp", "sg_message_id")
# Most columns a table gets. PostgreSQL and Redshift take 1,600 columns per table, SQL Server
# 1,024. A load that adds more fails, and dlt tries to add them again before every later load: one
# event with thousands of custom args, or custom args with ever-new keys, blocked the warehouse for
# good. Fields that find the table full go to OVERFLOW instead: per row, a JSON object of them.
# SendGrid's own fields (../shared/reference/sendgrid-api.md §1) and the journal's always get their
# column, so custom args cannot crowd them out: with them, dlt's load id and OVERFLOW, a table stays
# under 1,000 columns.
MAX_COLUMNS = 900
OVERFLOW = "_sgbridge_overflow"
SENDGRID_COLUMNS = frozenset({
    "email", "timestamp", "event", "smtp_id", "sg_event_id", "sg_message_id", "category", "reason", "status",
    "response", "attempt", "type", "bounce_classification", "ip", "tls", "cert_err", "useragent", "url",
    "url_offset__index", "url_offset__type", "sg_content_type", "sg_machine_open", "asm_group_id", "pool__name",
    "pool__id", "send_at", "marketing_campaign_id", "marketing_campaign_name", "marketing_campaign_version",
    "marketing_campaign_split_id", "post_type", "sg_user_id", "singlesend_id", "singlesend_name", "mc_stats",
    "phase_id", "template_id", "template_hash", "template_version_id", "sg_template_id", "sg_template_name",
    "mc_auto_id", "mc_auto_name", "mc_auto_step_id", "mc_auto_msg_id", "mc_auto_unique_id", "mc_pod_id",
    "newsletter__newsletter_user_list_id", "newsletter__newsletter_id", "newsletter__newsletter_send_id",
    "domain", "from",
})
_JOURNAL_COLUMNS = ("_sgbridge_seq", "_sgbridge_source", "_sgbridge_received_at")
NEVER_OVERFLOW = SENDGRID_COLUMNS | {f"{name}__v_text" for name in KNOWN_TYPES} | set(_JOURNAL_COLUMNS)


def _int(value: Any) -> int:
    """The whole number a value stands for, within BIGINT's range; ValueError if none."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        whole = value
    elif isinstance(value, float) and value.is_integer():
        whole = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdecimal():  # not isdigit: int("²") fails
        whole = int(value.strip())
    else:
        raise ValueError(value)
    if not _INT64_MIN <= whole <= _INT64_MAX:  # 1e19 would fail the whole batch's Arrow table
        raise ValueError(value)
    return whole


TOO_DEEP = "[nested too deep to keep as text: the event is in the journal]"


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # nested beyond the 254 levels orjson writes (it reads 1,024)
        return TOO_DEEP


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)


def coerce(name: str, value: Any) -> tuple[str, Any]:
    """(column, value) for one non-null field; values that do not fit go to the field's text variant."""
    kind = KNOWN_TYPES.get(name)
    if kind is None:
        if name == "category":
            return name, _json(value if isinstance(value, list) else [value])
        return name, _text(value)
    if kind is _INT:
        try:
            return name, _int(value)
        except ValueError:
            pass
    elif kind is _BOOL and isinstance(value, bool):
        return name, value
    return f"{name}__v_text", _text(value)


_NAMING = SnakeCaseNaming()


def column_name(field: str) -> str:
    """The column a field goes to, named as dlt names it (``smtp-id`` → ``smtp_id``, ``Email`` →
    ``email``). Named here rather than by dlt so that two fields of one name (``Email`` and ``email``,
    ``smtp-id`` and a custom ``smtp_id``) do not make dlt refuse the whole load. Called per column of
    a batch, not per field of every event: it costs nothing on the hot path."""
    return _NAMING.normalize_path(field) or "_unnamed"  # "" and "__" name nothing


def _second_name(name: str, field: str) -> str:
    """The column of a field whose name another field of the batch has, or a typed column's: the
    name with ``__dup_`` and a short hash of the field's own name, the same in every batch."""
    return f"{name}__dup_{hashlib.blake2b(field.encode(), digest_size=3).hexdigest()}"


class _Columns:
    """Columns of ``size`` rows, each a list filled by row index (absent values stay None)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: dict[str, list[Any]] = {name: [None] * size for name in LEADING}

    def put(self, row: int, name: str, value: Any) -> None:
        column = self.data.get(name)
        if column is None:
            column = self.data[name] = [None] * self.size
        column[row] = value

    def put_event(self, row: int, event: dict[str, Any], prefix: str = "", depth: int = 1) -> None:
        data, size = self.data, self.size  # locals: this loop runs for every field of every event
        for key, value in event.items():
            if value is None:
                continue
            name = prefix + key
            if type(value) is str and name not in _NOT_PLAIN_TEXT:  # the common case, without a call
                column = data.get(name)
                if column is None:
                    column = data[name] = [None] * size
                column[row] = value
            elif type(value) is dict and value and depth < MAX_NESTING:
                self.put_event(row, value, f"{name}__", depth + 1)  # nested objects: parent__child (dlt's naming)
            else:
                column_name_, coerced = coerce(name, value)
                self.put(row, column_name_, coerced)

    def table(self, in_use: set[str]) -> pa.Table:
        """The Arrow table, its columns named as dlt names them (see ``column_name``).

        ``in_use``: the table's columns so far; the new ones are added to it. Past ``MAX_COLUMNS``,
        new fields go to ``OVERFLOW``."""
        arrays, names, taken = [], [], set()
        overflow: list[dict[str, Any] | None] = []
        for field, values in self.data.items():
            if field in LEADING and all(v is None for v in values):
                continue
            name = column_name(field)
            if name.startswith("_dlt_") or (
                    name != field and (name in _NOT_PLAIN_TEXT or name in self.data or name in taken)):
                # Another field of this batch has the name, or a leading column (Email: email), or
                # it is a typed column (Timestamp's values are text), or dlt's own (dlt wrote its
                # load id over an event's `_dlt_load_id`): a column of its own, as text.
                name = _second_name(name, field)
            if name == OVERFLOW or (name not in in_use and len(in_use) >= MAX_COLUMNS
                                    and name not in NEVER_OVERFLOW):
                _put_overflow(overflow, field, values)
                continue
            in_use.add(name)
            taken.add(name)
            names.append(name)
            arrays.append(pa.array(values, type=KNOWN_TYPES.get(name, _TEXT)))
        if overflow:
            in_use.add(OVERFLOW)
            names.append(OVERFLOW)
            arrays.append(pa.array([None if fields is None else _json(fields) for fields in overflow], _TEXT))
        return pa.Table.from_arrays(arrays, names=names)


def _put_overflow(rows: list[dict[str, Any] | None], field: str, values: list[Any]) -> None:
    """Add a field's values to the per-row objects of ``OVERFLOW`` (rare: off the hot path)."""
    if not rows:
        rows.extend([None] * len(values))
    for row, value in enumerate(values):
        if value is not None:
            fields = rows[row]
            if fields is None:
                fields = rows[row] = {}
            fields[field] = value


def activity_table(events: Sequence[StoredEvent], in_use: set[str] | None = None) -> pa.Table:
    """Every event of the batch as one row of ``activity``; ``in_use``: its columns so far (those
    the batch adds are added to it)."""
    columns = _Columns(len(events))
    for row, stored in enumerate(events):
        body = stored.body
        if _ESCAPED_NUL in body:  # rare: a search in C, the regular expression only then
            body = _without_nul(body)
        event = orjson.loads(body)
        if type(event) is dict:
            columns.put_event(row, event)
    for own in _JOURNAL_COLUMNS:  # an event's own field of such a name is kept, in a column of its own
        values = columns.data.get(own)
        if values is not None and any(value is not None for value in values):
            columns.data[_second_name(own, own)] = [None if value is None else _text(value) for value in values]
    columns.data["_sgbridge_seq"] = [stored.seq for stored in events]  # after the event's fields: these win
    columns.data["_sgbridge_source"] = [stored.source for stored in events]
    columns.data["_sgbridge_received_at"] = [stored.received_at for stored in events]
    return columns.table(set() if in_use is None else in_use)


# JSON can carry a NUL character only escaped, and PostgreSQL's text cannot hold one: one such
# value failed the load, and dlt retried that load before every later one, for good. Each escaped
# NUL (``\u0000`` after an even number of backslashes: ``\\u0000`` is a backslash and "u0000")
# becomes U+FFFD, the replacement character, in the JSON text (no walk through deep nesting).
_ESCAPED_NUL = b"\\u0000"
_ESCAPED_NUL_AT = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def _without_nul(body: bytes) -> bytes:
    return _ESCAPED_NUL_AT.sub(rb"\1\\ufffd", body)


def _without_empty_columns(table: pa.Table) -> pa.Table:
    keep = [i for i, column in enumerate(table.columns) if column.null_count < table.num_rows]
    return table.select(keep)


def tables_for(events: Sequence[StoredEvent], in_use: set[str] | None = None) -> dict[str, pa.Table]:
    """Every table a batch of events goes to, ``activity`` included; ``in_use``: the columns
    ``activity`` has so far (per-type tables have some of them), updated with the batch's."""
    if not events:
        return {}
    activity = activity_table(events, in_use)
    out: dict[str, pa.Table] = {}
    if "event" in activity.column_names:
        kinds = activity["event"]
        for kind in pc.unique(kinds).to_pylist():
            table = EVENT_TABLES.get(kind) if kind is not None else None
            if table is not None:
                out[table] = _without_empty_columns(activity.filter(pc.equal(kinds, kind)))
    out[ACTIVITY] = activity
    return out
