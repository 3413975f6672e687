"""Segment's Webhook destination (``webhook.send``): the event, as mapped, to any HTTP endpoint.

The body is ``data`` as JSON (an array of the events' ``data`` in batch mode), serialised as
JavaScript's ``JSON.stringify`` does; with a ``sharedSecret`` setting, ``X-Signature`` is the
hex HMAC-SHA1 of the *first* event's ``data`` — the same scheme sgbridge's own
``/webhooks/segment`` checks.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from sgbridge.actions.executor import Context
from sgbridge.actions.operations import HttpCall, Invalid, Operation
from sgbridge.actions.results import OK, REJECTED, RETRY, Item, OpResult
from sgbridge.actions.sendgrid.api import RequestRecord
from sgbridge.destinations.classify import RETRYABLE_STATUS, short_body, wait_hint


def js_stringify(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def plan_send(payload: dict[str, Any], settings: dict[str, Any]) -> list[Operation]:
    headers = {str(k): str(v) for k, v in (payload.get("headers") or {}).items()}
    for name, value in headers.items():
        if not (name + value).isascii():
            raise Invalid(f"Cannot convert argument to a ByteString because the header {name!r} has a character "
                          "that is not ASCII")
    key = (payload["url"], payload["method"], tuple(sorted(headers.items())))
    return [HttpCall(payload["method"], payload["url"], headers, payload.get("data"),
                     settings.get("sharedSecret") or None, int(payload.get("batch_size") or 0), batch_key=key)]


def _groups(items: list[Item], batch: bool) -> list[list[Item]]:
    if not batch:
        return [[item] for item in items]
    groups: dict[tuple[Any, ...], list[list[Item]]] = {}
    for item in items:
        assert isinstance(item.op, HttpCall)
        runs = groups.setdefault(item.op.batch_key, [[]])
        limit = item.op.batch_size
        if limit > 0 and len(runs[-1]) >= limit:
            runs.append([])
        runs[-1].append(item)
    return [run for runs in groups.values() for run in runs if run]


async def _send(group: list[Item], ctx: Context, batch: bool) -> None:
    first = group[0].op
    assert isinstance(first, HttpCall)
    data = [i.op.data for i in group if isinstance(i.op, HttpCall)] if batch else first.data
    body = js_stringify(data)
    headers = {**first.headers, "Content-Type": "application/json"}
    if first.shared_secret and first.data is not None:
        signed = js_stringify(first.data)
        headers["X-Signature"] = hmac.new(first.shared_secret.encode(), signed, hashlib.sha1).hexdigest()
    started = time.perf_counter()
    try:
        response = await ctx.http.request(first.method, first.url, content=body, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        await _report(ctx, first, headers, body, None, b"", started, group, str(exc) or type(exc).__name__)
        result = OpResult(RETRY, f"{type(exc).__name__}: {exc}")
    else:
        await _report(ctx, first, headers, body, response.status_code, response.content, started, group, None)
        code = response.status_code
        if code < 300:
            result = OpResult(OK, status=code)
        elif code in RETRYABLE_STATUS or code >= 500:
            result = OpResult(RETRY, f"HTTP {code}: {short_body(response)}", code, after=wait_hint(response.headers))
        else:
            result = OpResult(REJECTED, f"HTTP {code}: {short_body(response)}", code)
    for item in group:
        item.settle(result)


async def _report(ctx: Context, op: HttpCall, headers: dict[str, str], body: bytes, status: int | None,
                  response_body: bytes, started: float, group: list[Item], error: str | None) -> None:
    if ctx.webhook_on_request is None:
        return
    elapsed = time.perf_counter() - started
    record = RequestRecord(op.method, str(httpx.URL(op.url)), headers, body, status, response_body, elapsed * 1000,
                           tuple(i.event.ref for i in group), error, time.time() - elapsed)
    outcome = ctx.webhook_on_request(record)
    if outcome is not None:
        await outcome


async def run_http_calls(items: list[Item], ctx: Context) -> None:
    batch = ctx.batch_requests and len(items) > 1
    await asyncio.gather(*(_send(group, ctx, batch) for group in _groups(items, batch)))
