"""What happens to every API request before and after its handler.

Order, as on the real service: the request is read and recorded; an injected fault may answer
instead (or after, for ``process=true`` "ack lost" faults); then authentication (401), the
account's plan (403 on ``/v3/marketing/*`` for an account without Marketing Campaigns), the
endpoint's scope (403), the rate-limit bucket (429, and ``X-RateLimit-*`` headers on every
later answer), OpenAPI validation (400) and finally the handler. Handlers are plain functions
of a ``Call`` that return a response or raise ``ApiError``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgbridge.emulators.faults import FaultInjector, FaultRule, fault_response
from sgbridge.emulators.sendgrid.auth import FORBIDDEN, KeyRing
from sgbridge.emulators.sendgrid.openapi import Operation, SpecSet
from sgbridge.emulators.sendgrid.ratelimit import RateLimiter
from sgbridge.emulators.sendgrid.state import SendGridEmulatorState
from sgbridge.emulators.sendgrid.util import ApiError, FieldError, errors_response, iso

Handler = Callable[["Call"], Response]
_HIDDEN_HEADERS = frozenset({"authorization"})
MAX_RECORDED_TEXT = 4096
MARKETING_PREFIX = "/v3/marketing/"


@dataclass(frozen=True)
class Endpoint:
    """One implemented operation: the spec operation it validates against and who may call it."""

    method: str
    path: str  # the spec's path template, also used as the Starlette route
    handler: Handler
    scopes: tuple[str, ...] = ()  # any one of them suffices; empty: any valid key

    @property
    def bucket(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class SendGridEmulator:
    """Everything one app instance owns (``app.state.emulator``)."""

    state: SendGridEmulatorState
    keys: KeyRing
    limiter: RateLimiter
    specs: SpecSet
    faults: FaultInjector = field(default_factory=FaultInjector)
    reject_invalid_emails: bool = True  # see contact_ops: 400 up front, or per-row job errors
    marketing_campaigns: bool = True  # False: an account without Marketing Campaigns (403 on /v3/marketing/*)


@dataclass
class Call:
    request: Request
    emulator: SendGridEmulator
    api_key: str
    body: Any
    params: dict[str, Any]  # validated path + query values, converted to their declared types

    @property
    def state(self) -> SendGridEmulatorState:
        return self.emulator.state

    @property
    def base_url(self) -> str:
        """``scheme://host`` as the client addressed us (api.sendgrid.com or api.eu.sendgrid.com)."""
        return f"{self.request.url.scheme}://{self.request.headers.get('host', self.request.url.netloc)}"


def sendgrid_fault_response(rule: FaultRule, limiter: RateLimiter, bucket: str) -> Response:
    """An injected failure in SendGrid's shape (drops reuse the shared connection-drop response)."""
    if rule.drop or rule.status is None:
        return fault_response(rule)
    if rule.status == 429:
        window = limiter.peek(bucket)
        reset = window.reset if rule.retry_after is None else math.ceil(limiter.now() + rule.retry_after)
        headers = {
            "X-RateLimit-Limit": str(window.limit), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)
        }
        return errors_response(429, [FieldError(None, "too many requests")], headers)
    message = "internal server error" if rule.status >= 500 else "emulated failure (fault injection)"
    return errors_response(rule.status, [FieldError(None, message)])


def _decode_body(raw: bytes) -> tuple[Any, str | None]:
    """(parsed JSON or None, the text when it is not JSON) for the request log."""
    if not raw:
        return None, None
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError:
        return None, raw[:MAX_RECORDED_TEXT].decode("utf-8", "replace")


def _record(state: SendGridEmulatorState, request: Request, raw: bytes) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        previous = query.get(key)
        query[key] = value if previous is None else [*(previous if isinstance(previous, list) else [previous]), value]
    parsed, text = _decode_body(raw)
    return state.record_request({
        "at": iso(state.now()),
        "received_at": state.now(),  # epoch seconds, for latency measurements
        "method": request.method,
        "path": request.url.path,
        "query": query,
        "host": request.headers.get("host"),
        "headers": {k: v for k, v in request.headers.items() if k.lower() not in _HIDDEN_HEADERS},
        "json": parsed,
        "body_text": text,
        "status": None,
        "fault": None,
    })


def _run(call_endpoint: Endpoint, operation: Operation, request: Request, raw: bytes) -> Response:
    emulator: SendGridEmulator = request.app.state.emulator
    rate_headers: dict[str, str] = {}
    try:
        api_key, scopes = emulator.keys.authenticate(request.headers.get("authorization"))
        if not emulator.marketing_campaigns and call_endpoint.path.startswith(MARKETING_PREFIX):
            raise ApiError(403, FieldError(None, FORBIDDEN))
        emulator.keys.authorize(scopes, call_endpoint.scopes)
        decision = emulator.limiter.hit(call_endpoint.bucket)
        rate_headers = decision.headers()
        if not decision.allowed:
            return errors_response(429, [FieldError(None, "too many requests")], rate_headers)
        body: Any = {}
        if raw.strip():
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise ApiError(400, FieldError(None, "invalid JSON")) from None
        # An absent body is validated as {} so required properties are reported by name.
        errors, params = operation.validate(request.path_params, request.query_params.multi_items(), body)
        if errors:
            raise ApiError(400, errors)
        response = call_endpoint.handler(Call(request, emulator, api_key, body, params))
    except ApiError as exc:
        return errors_response(exc.status, exc.errors, rate_headers)
    response.headers.update(rate_headers)
    return response


def _endpoint(call_endpoint: Endpoint, operation: Operation) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        emulator: SendGridEmulator = request.app.state.emulator
        raw = await request.body()  # faults act after the request was read, like a real server
        entry = _record(emulator.state, request, raw)
        emulator.state.tick()
        rule = emulator.faults.pick(request.url.path)
        response: Response | None = None
        if rule is not None and not rule.process:
            response = await _apply(rule, emulator, call_endpoint.bucket)
        if response is None:
            response = _run(call_endpoint, operation, request, raw)
            if rule is not None and rule.process:
                # process=true: the work was done but the client never learns it ("ack lost").
                response = await _apply(rule, emulator, call_endpoint.bucket) or response
        entry["status"] = response.status_code if not (rule and rule.drop) else "dropped"
        entry["fault"] = rule.id if rule is not None and (rule.fails_response or rule.delay) else None
        return response

    endpoint.__name__ = f"sendgrid_{call_endpoint.method.lower()}_{call_endpoint.path.strip('/').replace('/', '_')}"
    return endpoint


async def _apply(rule: FaultRule, emulator: SendGridEmulator, bucket: str) -> Response | None:
    if rule.delay:
        await asyncio.sleep(rule.delay)
    return sendgrid_fault_response(rule, emulator.limiter, bucket) if rule.fails_response else None


async def unknown_endpoint(request: Request) -> Response:
    """Anything not implemented: recorded, then SendGrid's 404 shape."""
    emulator: SendGridEmulator = request.app.state.emulator
    entry = _record(emulator.state, request, await request.body())
    entry["status"] = 404
    return errors_response(404, [FieldError(None, "resource not found")])


def build_routes(endpoints: Iterable[Endpoint], specs: SpecSet) -> list[Route]:
    """One route per endpoint; fails at start-up if the spec lacks an implemented operation."""
    return [Route(e.path, _endpoint(e, specs.operation(e.method, e.path)), methods=[e.method]) for e in endpoints]
