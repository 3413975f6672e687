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
import math
import re
import time
from typing import Any

import httpx
import orjson

from sgbridge.actions.executor import Context
from sgbridge.actions.operations import HttpCall, Invalid, Operation
from sgbridge.actions.results import OK, REJECTED, RETRY, Item, OpResult
from sgbridge.actions.sendgrid.api import RequestRecord
from sgbridge.destinations.classify import RETRYABLE_STATUS, short_body, wait_hint

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an HTTP header name (RFC 9110 token)
SAFE_INTEGER = 2**53


def js_number(number: float) -> str:
    """A number as JavaScript writes it (Number::toString): every number is a double, integral
    values have no fraction, the exponent form only below 1e-6 and from 1e21."""
    if isinstance(number, int) and abs(number) <= SAFE_INTEGER:
        return str(number)
    value = float(number)
    if value != value or value in (math.inf, -math.inf):
        return "null"
    if value == 0:
        return "0"
    text = repr(value)
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0) - (len(digits) - len(digits.lstrip("0")))
    digits = digits.strip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    return sign + digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def _js(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "null" if value is None else "true" if value else "false"
    if isinstance(value, int | float):
        return js_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{_js(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_js(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _written_alike(value: Any) -> bool:
    """Whether orjson writes every number of ``value`` as JSON.stringify does: all but integral
    floats (1.0), floats Python writes with an exponent (below 1e-4, from 1e16), NaN/Infinity and
    integers past 2^53 — the rare cases the JavaScript writer handles."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            if item != item or item.is_integer() or not 1e-4 <= abs(item) < 1e16:
                return False
        elif kind is int and not -SAFE_INTEGER <= item <= SAFE_INTEGER:
            return False
    return True


def js_stringify(value: Any) -> bytes:
    """``JSON.stringify``: its separators, its numbers (orjson's output when they agree)."""
    if _written_alike(value):
        try:
            return orjson.dumps(value)
        except TypeError:  # a key or value orjson does not take: the general writer
            pass
    return _js(value).encode()


def _header_text(value: Any) -> str:
    """``String(value)`` for a mapped header value."""
    if isinstance(value, bool) or value is None:
        return "null" if value is None else "true" if value else "false"
    if isinstance(value, int | float):
        return js_number(value)
    return str(value)


def plan_send(payload: dict[str, Any], settings: dict[str, Any], *, batched: bool = True) -> list[Operation]:
    headers = {str(k): _header_text(v) for k, v in (payload.get("headers") or {}).items()}
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise Invalid(f"{name} is not a legal HTTP header name")
        if any(c in value for c in "\r\n\0"):
            raise Invalid(f"{value} is not a legal HTTP header value")
        if any(ord(c) > 255 for c in name + value):
            raise Invalid(f"Cannot convert argument to a ByteString because the header {name!r} has a character "
                          "whose value is greater than 255")
    key = (payload["url"], payload["method"], tuple(sorted(headers.items())))
    return [HttpCall(payload["method"], payload["url"], headers, payload.get("data"),
                     settings.get("sharedSecret") or None, int(payload.get("batch_size") or 0), batch_key=key,
                     batched=batched)]


def _groups(items: list[Item], batch: bool) -> list[list[Item]]:
    """Each batched call in a run of its batch key (at most ``batch_size`` long); the others alone."""
    groups: dict[tuple[Any, ...], list[list[Item]]] = {}
    alone: list[list[Item]] = []
    for item in items:
        assert isinstance(item.op, HttpCall)
        if not (batch and item.op.batched):
            alone.append([item])
            continue
        runs = groups.setdefault(item.op.batch_key, [[]])
        limit = item.op.batch_size
        if limit > 0 and len(runs[-1]) >= limit:
            runs.append([])
        runs[-1].append(item)
    return [run for runs in groups.values() for run in runs if run] + alone


async def _send(group: list[Item], ctx: Context, batch: bool) -> None:
    first = group[0].op
    assert isinstance(first, HttpCall)
    data = [i.op.data for i in group if isinstance(i.op, HttpCall)] if batch and first.batched else first.data
    body = js_stringify(data)
    headers = {**first.headers, "Content-Type": "application/json"}
    if first.shared_secret and first.data is not None:
        signed = js_stringify(first.data)
        headers["X-Signature"] = hmac.new(first.shared_secret.encode(), signed, hashlib.sha1).hexdigest()
    started = time.perf_counter()
    try:
        wire = {name.encode(): value.encode("latin-1") for name, value in headers.items()}  # a ByteString, as fetch
        response = await ctx.http.request(first.method, first.url, content=body, headers=wire, timeout=30.0)
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
    batch = ctx.batch_requests
    await asyncio.gather(*(_send(group, ctx, batch) for group in _groups(items, batch)))
