"""What the object sync reads: one collection per warehouse table.

Names follow Segment's classic SendGrid source (seed 001) where it has the collection —
``lists``, ``segments``, ``recipients`` (the contacts), ``campaigns`` (single sends) — and
Airbyte's SendGrid source for the rest (sendgrid-api.md §4.1). Every table is merged on its
primary key, so it shows each object's latest state.

Two kinds:

* **snapshots** are read whole on every run; after a complete load, rows of objects SendGrid no
  longer has are deleted (every row carries the run that last saw it, ``_sgbridge_sync_run``);
* **incremental** lists (the suppression lists) are read from the newest ``created`` already
  loaded (dlt's incremental cursor, saved with the load itself). Entries removed in SendGrid stay
  until a ``--full-refresh`` run rebuilds the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sgbridge.sync.api import SyncApi
from sgbridge.sync.contacts_export import export_tables, wait_for_export
from sgbridge.sync.pages import offset_pages, one_page, token_pages

RUN_COLUMN = "_sgbridge_sync_run"
SUPPRESSION_PAGE = 500  # the suppression endpoints' largest limit


@dataclass
class Context:
    """What a collection's reader needs for one run."""

    api: SyncApi
    run_id: str
    export_timeout: float = 3600.0
    export_poll: float = 2.0
    on_total: Callable[[int], None] = lambda total: None
    on_note: Callable[[str], None] = lambda note: None


Pages = Iterator[list[dict[str, Any]] | pa.Table]


@dataclass(frozen=True)
class Collection:
    name: str  # the warehouse table
    description: str
    primary_key: tuple[str, ...]
    scopes: tuple[str, ...]  # any one of them lets the key read it
    read: Callable[[Context, int | None], Pages]  # (context, incremental start) -> pages
    marketing: bool = False  # needs Marketing Campaigns on the account
    incremental: str | None = None  # cursor field, for the incremental lists


def keyed(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """Rows without their primary key are dropped (they cannot be merged), and the key columns are
    marked not null, as dlt marks primary keys: otherwise it warns about every batch."""
    for key in keys:
        if key in table.column_names:
            table = table.filter(pc.is_valid(table[key]))
            index = table.schema.get_field_index(key)
            table = table.cast(table.schema.set(index, table.schema.field(index).with_nullable(False)))
    return table


def _stamped(rows: list[dict[str, Any]], ctx: Context, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{**{k: v for k, v in row.items() if k not in drop}, RUN_COLUMN: ctx.run_id} for row in rows]


def _lists(ctx: Context, _: int | None) -> Pages:
    for page in token_pages(ctx.api, "/v3/marketing/lists", 1000):
        yield _stamped(page, ctx, drop=("_metadata",))


def _segments(ctx: Context, _: int | None) -> Pages:
    for page in one_page(ctx.api, "/v3/marketing/segments/2.0", items="results"):
        yield _stamped(page, ctx)


def _campaigns(ctx: Context, _: int | None) -> Pages:
    for page in token_pages(ctx.api, "/v3/marketing/singlesends", 100):
        yield _stamped(page, ctx)


def _field_definitions(ctx: Context, _: int | None) -> Pages:
    data = ctx.api.get("/v3/marketing/field_definitions")
    rows = []
    for kind, key in (("custom", "custom_fields"), ("reserved", "reserved_fields")):
        items = data.get(key) if isinstance(data, dict) else None
        rows += [{**item, "kind": kind} for item in items or [] if isinstance(item, dict)]
    if rows:
        yield _stamped(rows, ctx)


def _recipients(ctx: Context, _: int | None) -> Pages:
    def status(job: dict[str, Any]) -> None:
        if isinstance(job.get("contact_count"), int):
            ctx.on_total(job["contact_count"])
        ctx.on_note(f"export {job.get('status')}")

    ctx.on_note("export requested")
    job = wait_for_export(ctx.api, ctx.export_timeout, ctx.export_poll, status)
    ctx.on_note("downloading")
    for table in export_tables(ctx.api, job):
        table = table.append_column(RUN_COLUMN, pa.array([ctx.run_id] * table.num_rows, pa.string()))
        yield keyed(table, ("contact_id",))


def _unsubscribe_groups(ctx: Context, _: int | None) -> Pages:
    for page in one_page(ctx.api, "/v3/asm/groups"):
        yield _stamped(page, ctx)


def _group_members(ctx: Context, _: int | None) -> Pages:
    for page in one_page(ctx.api, "/v3/asm/suppressions"):
        yield _stamped(page, ctx)


_SUPPRESSION_FIELDS = {
    "global_unsubscribes": ("created", "email"),
    "bounces": ("created", "email", "reason", "status"),
    "blocks": ("created", "email", "reason", "status"),
    "spam_reports": ("created", "email", "ip"),
    "invalid_emails": ("created", "email", "reason"),
}


def _suppression_reader(path: str, fields: tuple[str, ...], key: tuple[str, ...] = ("email",)
                        ) -> Callable[[Context, int | None], Pages]:
    # The lists can be long (a large sender has many bounces): pages become Arrow tables, which
    # dlt loads far faster than dicts. The fields are few and fixed.
    schema = pa.schema([(name, pa.int64() if name == "created" else pa.string()) for name in fields]
                       + [(RUN_COLUMN, pa.string())])

    def read(ctx: Context, start: int | None) -> Pages:
        params = {"start_time": start} if start else {}
        for page in offset_pages(ctx.api, path, SUPPRESSION_PAGE, params):
            yield keyed(pa.Table.from_pylist(_stamped(page, ctx), schema=schema), key)

    return read


MARKETING_READ = ("marketing.read",)
COLLECTIONS: dict[str, Collection] = {c.name: c for c in [
    Collection("lists", "Marketing Campaigns lists, with their contact counts", ("id",), MARKETING_READ, _lists,
               marketing=True),
    Collection("segments", "segments (v2), with their queries and contact counts", ("id",), MARKETING_READ,
               _segments, marketing=True),
    Collection("recipients", "every contact (through the contacts export job)", ("contact_id",), MARKETING_READ,
               _recipients, marketing=True),
    Collection("campaigns", "single sends", ("id",), MARKETING_READ, _campaigns, marketing=True),
    Collection("field_definitions", "custom and reserved contact fields", ("id",), MARKETING_READ,
               _field_definitions, marketing=True),
    Collection("unsubscribe_groups", "unsubscribe (suppression) groups", ("id",), ("asm.groups.read",),
               _unsubscribe_groups),
    Collection("unsubscribe_group_members", "addresses unsubscribed from each group", ("group_id", "email"),
               ("asm.groups.suppressions.read", "asm.groups.read"), _group_members),
    Collection("global_unsubscribes", "global unsubscribes", ("email",),
               ("suppression.unsubscribes.read", "suppression.read"),
               _suppression_reader("/v3/suppression/unsubscribes", _SUPPRESSION_FIELDS["global_unsubscribes"]),
               incremental="created"),
    *[Collection(name, f"the {name.replace('_', ' ')} suppression list", ("email",),
                 (f"suppression.{name}.read", "suppression.read"),
                 _suppression_reader(f"/v3/suppression/{name}", _SUPPRESSION_FIELDS[name]), incremental="created")
      for name in ("bounces", "blocks", "spam_reports", "invalid_emails")],
]}
