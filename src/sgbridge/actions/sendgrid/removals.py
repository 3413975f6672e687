"""Taking contacts off a list: find their ids by identifiers, then delete the memberships.

As Segment's audience sync does: one SGQL search per chunk of at most 50 identifier values
(``email IN ('a','b') OR phone_number_id IN (...) OR ...``; SendGrid returns at most 50 matches),
then ``DELETE /v3/marketing/lists/{id}/contacts?contact_ids=...`` with at most 100 ids. A
contact that is not found is not on the list: its removal has nothing left to do.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sgbridge.actions.executor import Context
from sgbridge.actions.operations import IDENTIFIER_KINDS, ListRemoval
from sgbridge.actions.results import OK, REJECTED, RETRY, Item, OpResult
from sgbridge.actions.sendgrid.api import Transient, rejection, response_json

MAX_SEARCH_VALUES = 50
MAX_REMOVE_IDS = 100


def _chunks(items: list[Item]) -> list[list[Item]]:
    chunks: list[list[Item]] = []
    current: list[Item] = []
    size = 0
    for item in items:
        assert isinstance(item.op, ListRemoval)
        count = len(item.op.identifier_values)
        if current and size + count > MAX_SEARCH_VALUES:
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += count
    if current:
        chunks.append(current)
    return chunks


def _sgql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def search_query(items: list[Item]) -> str:
    parts = []
    for kind in IDENTIFIER_KINDS:
        values = [item.op.identifier_values[kind] for item in items
                  if isinstance(item.op, ListRemoval) and kind in item.op.identifier_values]
        if values:
            parts.append(f"{kind} IN ({','.join(_sgql_literal(v) for v in values)})")
    return " OR ".join(parts)


def _settle(items: list[Item], result: OpResult) -> None:
    for item in items:
        item.settle(result)


async def _search(chunk: list[Item], ctx: Context) -> list[str] | None:
    owners = [i.event.ref for i in chunk]
    try:
        response = await ctx.api.call("POST", "/v3/marketing/contacts/search", body={"query": search_query(chunk)},
                                      owners=owners)
    except Transient as exc:
        _settle(chunk, OpResult(RETRY, exc.reason, exc.status, after=exc.after))
        return None
    if response.status_code >= 300:
        failure = rejection(response, "contact search")
        _settle(chunk, OpResult(REJECTED, failure.reason, failure.status))
        return None
    data: Any = response_json(response)
    found = data.get("result") if isinstance(data, dict) else None
    return [str(c["id"]) for c in found or [] if isinstance(c, dict) and "id" in c]


async def _remove_from(list_id: str, items: list[Item], ctx: Context) -> None:
    chunks = _chunks(items)
    searches = await asyncio.gather(*(_search(chunk, ctx) for chunk in chunks))
    searched = [item for chunk, ids in zip(chunks, searches, strict=True) if ids is not None for item in chunk]
    contact_ids = [cid for ids in searches if ids for cid in ids]
    owners = [i.event.ref for i in searched]
    failures: list[OpResult] = []

    async def delete(ids: list[str]) -> None:
        path = f"/v3/marketing/lists/{list_id}/contacts?contact_ids={','.join(ids)}"
        try:
            response = await ctx.api.call("DELETE", path, owners=owners)
        except Transient as exc:
            failures.append(OpResult(RETRY, exc.reason, exc.status, after=exc.after))
            return
        if response.status_code >= 300:
            failure = rejection(response, f"removal from list {list_id}")
            failures.append(OpResult(REJECTED, failure.reason, failure.status))

    batches = [contact_ids[i:i + MAX_REMOVE_IDS] for i in range(0, len(contact_ids), MAX_REMOVE_IDS)]
    await asyncio.gather(*(delete(batch) for batch in batches))
    # Which contact ids belong to which event is not known from a combined search: a failed
    # DELETE fails every removal of the list in this round (they are safe to repeat).
    _settle(searched, max(failures, key=lambda r: r.kind == REJECTED) if failures else OpResult(OK, status=200))


async def run_list_removals(items: list[Item], ctx: Context) -> None:
    by_list: dict[str, list[Item]] = {}
    for item in items:
        assert isinstance(item.op, ListRemoval)
        by_list.setdefault(item.op.list_id, []).append(item)
    await asyncio.gather(*(_remove_from(list_id, group, ctx) for list_id, group in by_list.items()))
