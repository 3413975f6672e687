"""Contact upserts: coalesce per contact, pack into PUTs, follow the import job to per-row results.

* Custom fields given by name are resolved to ids through ``/v3/marketing/field_definitions``
  (cached; fetched again once on a miss). Upsert Contact rejects an unknown name with Segment's
  message; Sync Audience passes it on unchanged, as Segment does.
* Rows of one contact (same first identifier, no conflicting identifiers) are merged: later
  values win, custom fields and lists add up.
* Rows are packed into PUTs of at most 30,000 contacts and 6 MB, one list set per PUT.
* A 400 naming rows (``contacts.3.email``: ``email 'x' is not valid``, unknown custom field
  ids) rejects those rows' events with SendGrid's reason and the PUT goes again without them.
* A 202 job is polled until it is done; rows listed in its ``errors_url`` are rejected, the
  others delivered.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from sgbridge.actions.executor import Context
from sgbridge.actions.operations import IDENTIFIER_KINDS, Upsert
from sgbridge.actions.results import OK, REJECTED, RETRY, Item, OpResult
from sgbridge.actions.sendgrid.api import Rejection, SendGridApi, Transient, api_errors, rejection, response_json

MAX_CONTACTS_PER_PUT = 30_000
MAX_PUT_BYTES = 6_000_000  # SendGrid's "6MB", with room for the envelope
_ROW_FIELD = re.compile(r"^contacts\.(\d+)(?:\.|$)")
_BAD_EMAIL = re.compile(r"email '(.+?)' is not valid")
_BAD_FIELD_IDS = re.compile(r"invalid custom field ids supplied - (.+)$")
UNKNOWN_FIELD = "Unknown custom field '{}'. To see your defined custom fields, visit https://mc.sendgrid.com/custom-fields"


@dataclass
class Row:
    data: dict[str, Any]
    list_ids: tuple[str, ...]
    send_empty_lists: bool
    items: list[Item] = field(default_factory=list)

    def identifiers(self) -> dict[str, str]:
        return {k: str(self.data[k]).lower() if k == "email" else str(self.data[k])
                for k in IDENTIFIER_KINDS if self.data.get(k) not in (None, "")}


def _sendgrid(ctx: Context) -> SendGridApi:
    assert isinstance(ctx.api, SendGridApi)
    return ctx.api


async def _resolve_custom_fields(items: list[Item], ctx: Context) -> list[Item]:
    """Rewrite custom field names to ids; returns the items still valid."""
    needing = [i for i in items if isinstance(i.op, Upsert) and i.op.row.get("custom_fields")]
    if not needing:
        return items
    try:
        known = await _sendgrid(ctx).custom_fields()
    except Transient as exc:
        for item in needing:
            item.settle(OpResult(RETRY, exc.reason, exc.status, after=exc.after))
        return [i for i in items if i not in needing]
    except Rejection as exc:
        for item in needing:
            item.settle(OpResult(REJECTED, exc.reason, exc.status))
        return [i for i in items if i not in needing]
    refreshed = False
    valid: list[Item] = []
    for item in items:
        op = item.op
        assert isinstance(op, Upsert)
        custom = op.row.get("custom_fields") or {}
        resolved, unknown = _map_names(custom, known)
        if unknown and op.strict_custom_fields and not refreshed:
            known, refreshed = await _sendgrid(ctx).custom_fields(refresh=True), True
            resolved, unknown = _map_names(custom, known)
        if unknown and op.strict_custom_fields:
            item.settle(OpResult(REJECTED, UNKNOWN_FIELD.format(unknown[0]), 400, "Invalid value"))
            continue
        if custom:
            op.row["custom_fields"] = resolved
        valid.append(item)
    return valid


def _map_names(custom: dict[str, Any], known: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    ids = {str(f["id"]) for f in known}
    by_name = {str(f["name"]).lower(): str(f["id"]) for f in known}
    resolved: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in custom.items():
        if key in ids:
            resolved[key] = value
        elif key.lower() in by_name:
            resolved[by_name[key.lower()]] = value
        else:
            unknown.append(key)
            resolved[key] = value
    return resolved, unknown


def _coalesce(items: list[Item]) -> list[Row]:
    rows: list[Row] = []
    by_identity: dict[tuple[str, str], Row] = {}
    for item in items:
        op = item.op
        assert isinstance(op, Upsert)
        candidate = Row(dict(op.row), tuple(op.list_ids), op.send_empty_lists, [item])
        ids = candidate.identifiers()
        first = next(((k, ids[k]) for k in IDENTIFIER_KINDS if k in ids), None)
        existing = by_identity.get(first) if first else None
        if existing is not None and _compatible(existing.identifiers(), ids) and \
                existing.send_empty_lists == candidate.send_empty_lists:
            _merge(existing, candidate)
            continue
        rows.append(candidate)
        if first:
            by_identity[first] = candidate
    return rows


def _compatible(a: dict[str, str], b: dict[str, str]) -> bool:
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def _merge(into: Row, new: Row) -> None:
    custom = {**(into.data.get("custom_fields") or {}), **(new.data.get("custom_fields") or {})}
    into.data.update(new.data)
    if custom or "custom_fields" in into.data:
        into.data["custom_fields"] = custom
    into.list_ids = into.list_ids + tuple(x for x in new.list_ids if x not in into.list_ids)
    into.items.extend(new.items)


def _pack(rows: list[Row]) -> list[list[Row]]:
    by_lists: dict[tuple[tuple[str, ...], bool], list[Row]] = {}
    for row in rows:
        by_lists.setdefault((row.list_ids, row.send_empty_lists), []).append(row)
    # PUTs that add to lists go first, as Segment's audience sync sends its adds before removals.
    ordered = sorted(by_lists.values(), key=lambda group: not group[0].list_ids)
    chunks: list[list[Row]] = []
    for group in ordered:
        current: list[Row] = []
        size = 0
        for row in group:
            row_bytes = len(orjson.dumps(row.data)) + 1
            if current and (len(current) >= MAX_CONTACTS_PER_PUT or size + row_bytes > MAX_PUT_BYTES):
                chunks.append(current)
                current, size = [], 0
            current.append(row)
            size += row_bytes
        if current:
            chunks.append(current)
    return chunks


def _body(chunk: list[Row]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if chunk[0].list_ids or chunk[0].send_empty_lists:
        body["list_ids"] = list(chunk[0].list_ids)
    body["contacts"] = [row.data for row in chunk]
    return body


def _settle_rows(rows: list[Row], result: OpResult) -> None:
    for row in rows:
        for item in row.items:
            item.settle(result)


def _owners(rows: list[Row]) -> list[int]:
    return [item.event.ref for row in rows for item in row.items]


def _rows_refused(chunk: list[Row], errors: list[dict[str, Any]]) -> dict[int, str]:
    """Row index -> SendGrid's reason, for the errors of a 400 that point at rows."""
    refused: dict[int, str] = {}
    for error in errors:
        message = str(error.get("message") or "")
        where = _ROW_FIELD.match(str(error.get("field") or ""))
        if where and int(where[1]) < len(chunk):
            refused.setdefault(int(where[1]), message)
            continue
        bad_email = _BAD_EMAIL.search(message)
        bad_ids = _BAD_FIELD_IDS.search(message)
        for index, row in enumerate(chunk):
            if (bad_email and str(row.data.get("email")) == bad_email[1]) or \
                    (bad_ids and set(bad_ids[1].split(",")) & set(row.data.get("custom_fields") or {})):
                refused.setdefault(index, message)
    return refused


async def _put(chunk: list[Row], ctx: Context) -> None:
    for _ in range(3):  # each pass drops the rows SendGrid named
        if not chunk:
            return
        try:
            response = await ctx.api.call("PUT", "/v3/marketing/contacts", body=_body(chunk), owners=_owners(chunk))
        except Transient as exc:
            _settle_rows(chunk, OpResult(RETRY, exc.reason, exc.status, after=exc.after))
            return
        if response.status_code < 300:
            data = response_json(response)
            job_id = data.get("job_id") if isinstance(data, dict) else None
            if job_id:
                await _follow_job(str(job_id), chunk, ctx)
            else:
                _settle_rows(chunk, OpResult(OK, status=response.status_code))
            return
        refused = _rows_refused(chunk, api_errors(response)) if response.status_code == 400 else {}
        if not refused:
            failure = rejection(response, "contacts upsert")
            _settle_rows(chunk, OpResult(REJECTED, failure.reason, failure.status))
            return
        for index, reason in refused.items():
            _settle_rows([chunk[index]], OpResult(REJECTED, reason, 400, "PAYLOAD_VALIDATION_FAILED"))
        chunk = [row for index, row in enumerate(chunk) if index not in refused]
    _settle_rows(chunk, OpResult(REJECTED, "SendGrid kept refusing the contacts upsert", 400))


async def _follow_job(job_id: str, chunk: list[Row], ctx: Context) -> None:
    deadline = time.monotonic() + ctx.job_timeout_seconds
    delay = ctx.job_poll_seconds
    while True:
        await asyncio.sleep(delay)
        try:
            response = await ctx.api.call("GET", f"/v3/marketing/contacts/imports/{job_id}", owners=_owners(chunk))
        except Transient as exc:
            response = None
            last = exc.reason
        if response is not None:
            data = response_json(response)
            status = data.get("status") if isinstance(data, dict) else None
            if response.status_code < 300 and status not in (None, "pending"):
                await _job_done(data, chunk, ctx)
                return
            last = f"import job {job_id} is {status or f'HTTP {response.status_code}'}"
        if time.monotonic() > deadline:
            _settle_rows(chunk, OpResult(RETRY, f"{last} after {ctx.job_timeout_seconds:.0f} s; will upsert again"))
            return
        delay = min(delay * 1.5, 5.0)


async def _job_done(job: dict[str, Any], chunk: list[Row], ctx: Context) -> None:
    results = job.get("results") or {}
    errored = int(results.get("errored_count") or 0)
    failed_rows: dict[int, str] = {}
    if errored and results.get("errors_url"):
        failed_rows = await _job_errors(str(results["errors_url"]), chunk, ctx)
    for index, row in enumerate(chunk):
        if index in failed_rows:
            _settle_rows([row], OpResult(REJECTED, failed_rows[index], 400, "PAYLOAD_VALIDATION_FAILED"))
        elif job.get("status") == "failed" and not failed_rows:
            _settle_rows([row], OpResult(REJECTED, f"SendGrid import job {job.get('id')} failed", 400))
        else:
            _settle_rows([row], OpResult(OK, status=200, detail={"job_id": job.get("id")}))


async def _job_errors(url: str, chunk: list[Row], ctx: Context) -> dict[int, str]:
    """Row index -> reason from the job's errors CSV (columns ``row``/``email`` and ``error``)."""
    try:
        response = await ctx.api.call("GET", url, owners=_owners(chunk))
    except Transient:
        return {}
    if response.status_code >= 300:
        return {}
    failed: dict[int, str] = {}
    emails = {str(row.data.get("email", "")).lower(): i for i, row in enumerate(chunk)}
    for record in csv.DictReader(io.StringIO(response.text)):
        reason = record.get("error") or record.get("message") or "rejected by SendGrid"
        if (record.get("row") or "").isdigit() and int(record["row"]) < len(chunk):
            failed[int(record["row"])] = reason
        elif (record.get("email") or "").lower() in emails:
            failed[emails[record["email"].lower()]] = reason
    return failed


async def run_upserts(items: list[Item], ctx: Context) -> None:
    valid = await _resolve_custom_fields(items, ctx)
    chunks = _pack(_coalesce(valid))
    await asyncio.gather(*(_put(chunk, ctx) for chunk in chunks))
