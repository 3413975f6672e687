"""Unsubscribe groups and the global unsubscribe list.

Additions are batched: one ``POST /v3/asm/groups/{id}/suppressions`` (or
``/v3/asm/suppressions/global``) per group with every address of the round. Removals have no
batch endpoint: one ``DELETE .../{email}`` each. Both are idempotent, so retrying is safe.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from sgbridge.actions.executor import Context
from sgbridge.actions.operations import SuppressionChange
from sgbridge.actions.results import OK, REJECTED, RETRY, Item, OpResult
from sgbridge.actions.sendgrid.api import Transient, rejection

MAX_ADDRESSES_PER_ADD = 1000


async def _call(items: list[Item], ctx: Context, method: str, path: str, body: object = None) -> None:
    try:
        response = await ctx.api.call(method, path, body=body, owners=[i.event.ref for i in items])
    except Transient as exc:
        result = OpResult(RETRY, exc.reason, exc.status, after=exc.after)
    else:
        if response.status_code < 300 or (method == "DELETE" and response.status_code == 404):
            result = OpResult(OK, status=response.status_code)  # 404 on removal: already not suppressed
        else:
            failure = rejection(response, f"{method} {path}")
            result = OpResult(REJECTED, failure.reason, failure.status)
    for item in items:
        item.settle(result)


def _path(group_id: int | None) -> str:
    return "/v3/asm/suppressions/global" if group_id is None else f"/v3/asm/groups/{group_id}/suppressions"


async def run_suppressions(items: list[Item], ctx: Context) -> None:
    calls = []
    additions: dict[int | None, list[Item]] = {}
    for item in items:
        op = item.op
        assert isinstance(op, SuppressionChange)
        if op.add:
            additions.setdefault(op.group_id, []).append(item)
        else:
            calls.append(_call([item], ctx, "DELETE", f"{_path(op.group_id)}/{quote(op.email, safe='@')}"))
    for group_id, group in additions.items():
        for start in range(0, len(group), MAX_ADDRESSES_PER_ADD):
            part = group[start:start + MAX_ADDRESSES_PER_ADD]
            emails = list(dict.fromkeys(i.op.email for i in part if isinstance(i.op, SuppressionChange)))
            calls.append(_call(part, ctx, "POST", _path(group_id), {"recipient_emails": emails}))
    await asyncio.gather(*calls)
