"""What happens to every Dotdigital API request before and after its handler.

Order: the request is read and recorded; an injected fault may answer instead (or after, for
``process=true`` faults); then the region (403 ``Access is denied`` for a region host other than
the account's, except ``GET /v2/account-info`` on r1, which answers for every region); then
HTTP Basic authentication (401); then the endpoint's rate-limit tier (429 with
``X-RateLimit-*``; every later answer of a tiered call carries the headers too); then the
handler. Handlers are functions of a ``Call`` that return a response or raise ``V2Error`` /
``V3Error``, the two error shapes of the API:

- v2 (``/v2/...``): ``{"message": "<text> ERROR_CODE"}``, e.g.
  ``{"message": "Error: ERROR_CONTACT_NOT_FOUND"}`` and, for a 401,
  ``{"message": "Authorization has been denied for this request."}`` (the strings Dotdigital's
  own Magento connector matches, dotmailer/dotmailer-magento-extension ``Apiconnector/Client.php``).
- v3 (``/contacts/v3/...``): ``{"errorCode": "contacts:invalidId", "description": "...",
  "details": [{"item": ..., "description": ...}]}`` (the v3 contacts OpenAPI ``errorResponse``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgbridge.emulators.dotdigital.limits import TierLimiter
from sgbridge.emulators.dotdigital.state import DotdigitalState, iso
from sgbridge.emulators.faults import FaultInjector, FaultRule, fault_response

REGIONS = ("r1", "r2", "r3")
REGION_HOSTS = {f"{r}-api.dotdigital.com": r for r in REGIONS}
AUTH_DENIED = "Authorization has been denied for this request."
ACCESS_DENIED = "Access is denied"
_HIDDEN_HEADERS = frozenset({"authorization"})
MAX_RECORDED_TEXT = 4096

Handler = Callable[["Call"], Response]


class V2Error(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class V3Error(Exception):
    def __init__(self, status: int, code: str, description: str,
                 details: list[dict[str, str]] | None = None) -> None:
        super().__init__(description)
        self.status, self.code, self.description, self.details = status, code, description, details


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=dict(headers or {}),
                    media_type="application/json")


def v2_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response({"message": message}, status, headers)


def v3_error(exc: V3Error, headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"errorCode": exc.code, "description": exc.description}
    if exc.details is not None:
        body["details"] = exc.details
    return json_response(body, exc.status, headers)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    tier: str  # limits.TierLimiter tier, or "unlimited"


@dataclass
class DotdigitalEmulator:
    """Everything one app instance owns (``app.state.emulator``)."""

    state: DotdigitalState
    users: dict[str, str] | None  # None: any non-empty user name and password
    region: str
    limiter: TierLimiter
    faults: FaultInjector = field(default_factory=FaultInjector)
    from_addresses: set[str] | None = None  # None: any valid address may be the FromAddress

    def base_url(self) -> str:
        return f"https://{self.region}-api.dotdigital.com"


@dataclass
class Call:
    request: Request
    emulator: DotdigitalEmulator
    user: str
    body: Any

    @property
    def state(self) -> DotdigitalState:
        return self.emulator.state

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])


def request_region(request: Request, account_region: str) -> str:
    """The region a request was addressed to: its Host, or the account's for any other host."""
    host = (request.headers.get("host") or "").split(":")[0].lower()
    return REGION_HOSTS.get(host, account_region)


def authenticate(users: dict[str, str] | None, header: str | None) -> str | None:
    scheme, _, credentials = (header or "").partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        return None
    try:
        user, sep, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not sep or not user or not password:
        return None
    if users is not None and users.get(user) != password:
        return None
    return user


def _is_v3(path: str) -> bool:
    return path.startswith("/contacts/v3") or path.startswith("/cpaas/")


def dotdigital_fault_response(rule: FaultRule, emulator: DotdigitalEmulator, tier: str, path: str) -> Response:
    if rule.drop or rule.status is None:
        return fault_response(rule)
    if rule.status == 429:
        headers = emulator.limiter.peek(tier).headers()
        headers["X-RateLimit-Remaining"] = "0"
        if rule.retry_after is not None:
            headers["X-RateLimit-Reset"] = str(math.ceil(rule.retry_after))
        return json_response({"message": "Too Many Requests"} if not _is_v3(path) else
                             {"errorCode": "tooManyRequests", "description": "Too Many Requests"}, 429, headers)
    message = "An error has occurred." if rule.status >= 500 else "emulated failure (fault injection)"
    if _is_v3(path):
        return v3_error(V3Error(rule.status, "emulated:fault", message))
    return v2_error(rule.status, message)


def _record(state: DotdigitalState, request: Request, raw: bytes) -> dict[str, Any]:
    parsed: Any = None
    text: str | None = None
    if raw:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            text = raw[:MAX_RECORDED_TEXT].decode("utf-8", "replace")
    return state.record_request({
        "at": iso(state.now()),
        "method": request.method,
        "path": request.url.path,
        "query": dict(request.query_params),
        "host": request.headers.get("host"),
        "headers": {k: v for k, v in request.headers.items() if k.lower() not in _HIDDEN_HEADERS},
        "json": parsed,
        "body_text": text,
        "status": None,
        "fault": None,
    })


def _run(endpoint: Endpoint, request: Request, raw: bytes) -> Response:
    emulator: DotdigitalEmulator = request.app.state.emulator
    path = request.url.path
    region = request_region(request, emulator.region)
    if region != emulator.region and not (region == "r1" and path.rstrip("/") == "/v2/account-info"):
        # developer.dotdigital.com "API conventions": "you can not use an API endpoint belonging to a
        # different region, and instead will receive a 403 - Forbidden: Access is denied error".
        return v2_error(403, ACCESS_DENIED)
    user = authenticate(emulator.users, request.headers.get("authorization"))
    if user is None:
        return v2_error(401, AUTH_DENIED, {"WWW-Authenticate": 'Basic realm="Dotdigital"'})
    decision = emulator.limiter.hit(endpoint.tier)
    headers = decision.headers() if decision else {}
    if decision is not None and not decision.allowed:
        if _is_v3(path):
            return v3_error(V3Error(429, "tooManyRequests", "Too Many Requests"), headers)
        return v2_error(429, "Too Many Requests", headers)
    body: Any = None
    try:
        if raw.strip():
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                if _is_v3(path):
                    raise V3Error(400, "validation:invalidJson", "The request body is not valid JSON") from None
                raise V2Error(400, "The request is invalid. ERROR_PARAMETER_INVALID") from None
        response = endpoint.handler(Call(request, emulator, user, body))
    except V2Error as exc:
        return v2_error(exc.status, exc.message, headers)
    except V3Error as exc:
        return v3_error(exc, headers)
    response.headers.update(headers)
    return response


def _route(endpoint: Endpoint) -> Callable[[Request], Any]:
    async def handle(request: Request) -> Response:
        emulator: DotdigitalEmulator = request.app.state.emulator
        raw = await request.body()
        entry = _record(emulator.state, request, raw)
        emulator.state.tick()
        rule = emulator.faults.pick(request.url.path)
        response: Response | None = None
        if rule is not None and not rule.process:
            response = await _apply(rule, emulator, endpoint.tier, request.url.path)
        if response is None:
            response = _run(endpoint, request, raw)
            if rule is not None and rule.process:
                response = await _apply(rule, emulator, endpoint.tier, request.url.path) or response
        entry["status"] = "dropped" if rule is not None and rule.drop else response.status_code
        entry["fault"] = rule.id if rule is not None and (rule.fails_response or rule.delay) else None
        return response

    handle.__name__ = f"dotdigital_{endpoint.method.lower()}_{endpoint.path.strip('/').replace('/', '_')}"
    return handle


async def _apply(rule: FaultRule, emulator: DotdigitalEmulator, tier: str, path: str) -> Response | None:
    if rule.delay:
        await asyncio.sleep(rule.delay)
    return dotdigital_fault_response(rule, emulator, tier, path) if rule.fails_response else None


async def unknown_endpoint(request: Request) -> Response:
    emulator: DotdigitalEmulator = request.app.state.emulator
    entry = _record(emulator.state, request, await request.body())
    entry["status"] = 404
    return v2_error(404, "No HTTP resource was found that matches the request URI.")


def build_routes(endpoints: list[Endpoint]) -> list[Route]:
    return [Route(e.path, _route(e), methods=[e.method]) for e in endpoints]
