"""Twilio Programmable Messaging emulator (Starlette ASGI app): the Messages API and status callbacks.

Implemented, as Twilio documents it (twilio.com/docs/messaging/api/message-resource, /docs/usage/
security, /docs/errors):

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded ``To``, ``From`` or
  ``MessagingServiceSid``, ``Body``, ``StatusCallback``. HTTP Basic with ``AccountSid:AuthToken``
  or an API key ``SKxxx:secret`` of the account (401 ``20003 Authenticate`` otherwise).
  ``201`` with the Message resource: ``sid`` ``SM`` + 32 hex, ``status`` ``queued`` (``From``) or
  ``accepted`` (``MessagingServiceSid``; ``from`` is null until a number of the service is
  picked), ``num_segments`` (GSM-7 160/153, UCS-2 70/67 characters), RFC 2822 dates.
- Validation errors, ``400 {"code", "message", "more_info", "status"}``: 21604 no ``To``, 21211
  ``To`` not E.164, 21603 no ``From``/``MessagingServiceSid``, 21212 ``From`` not a number,
  21606 ``From`` not one of the account's numbers, 21701 unknown Messaging Service, 21602 no
  ``Body``, 21617 ``Body`` over 1600 characters, 21266 ``To`` equal to ``From``, 21609 an
  invalid ``StatusCallback`` URL.
- ``GET .../Messages/{Sid}.json`` (404 ``20404``), ``GET .../Messages.json?To=&From=&PageSize=``.
- Statuses advance in the background, ``status_delay_seconds`` apart: (``accepted`` ->)
  ``queued`` -> ``sending`` -> ``sent`` -> ``delivered``, or ``undelivered``/``failed`` with an
  ``error_code`` for numbers configured in ``outcomes`` (e.g. ``{"+15005550009": ("undelivered",
  30003)}``). Each change to ``queued`` (from ``accepted``), ``sent``, ``delivered``,
  ``undelivered`` or ``failed`` is POSTed (httpx, a real HTTP request) to the message's
  ``StatusCallback``: form fields ``MessageSid``, ``SmsSid``, ``MessageStatus``, ``SmsStatus``,
  ``AccountSid``, ``From``, ``To``, ``ApiVersion``, ``MessagingServiceSid`` and ``ErrorCode`` when
  set, signed with ``X-Twilio-Signature`` = base64(HMAC-SHA1(auth token, URL + each parameter
  name and value, sorted by name)), as Twilio's request validators check it.
- Faults through the shared injector (``POST /_emulator/faults``), answered in Twilio's error
  shape (``20429`` for 429, ``20500`` for 5xx).

Not implemented: MMS media, scheduling (``SendAt``), ``ValidityPeriod``, price, message
deletion/redaction, inbound messages, WhatsApp/RCS senders, Twilio's per-number queueing
throughput (messages are never rate limited here; only faults give 429s).

Control endpoints (no auth, never faulted)::

    GET    /_emulator/messages?to=&status=     every message with its status history
    GET    /_emulator/callbacks                the callbacks POSTed: url, params, signature, answer
    GET|DELETE /_emulator/requests             the API requests received
    POST   /_emulator/settle                   wait until every message reached its final status
    POST   /_emulator/outcomes                 {"+1555...": {"status": "undelivered", "error_code": 30003}}
    GET|POST|DELETE /_emulator/faults          the shared fault rules
    POST   /_emulator/reset                    forget messages, callbacks, requests and faults
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgbridge.emulators.faults import FaultInjector, FaultRule, fault_response, faults_control

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEFAULT_AUTH_TOKEN = "test-auth-token"  # noqa: S105 - the emulator's dummy credential
DEFAULT_FROM = "+15005550006"  # Twilio's "valid From" magic test number
MAX_BODY = 1600
CALLBACK_STATUSES = frozenset({"queued", "sent", "delivered", "undelivered", "failed"})
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed"})
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
            "¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€")


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL followed by the sorted name+value pairs."""
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def segments(body: str) -> int:
    if all(c in _GSM7 for c in body):
        single, multi = 160, 153
    else:
        single, multi = 70, 67
    return 1 if len(body) <= single else -(-len(body) // multi)


def _rfc2822(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, UTC)).replace("-0000", "+0000")


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}
    return Response(orjson.dumps(body), status_code=status, headers=dict(headers or {}),
                    media_type="application/json")


@dataclass
class Message:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    created: float
    status: str
    updated: float
    sent: float | None = None
    error_code: int | None = None
    history: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid, "api_version": API_VERSION, "body": self.body,
            "date_created": _rfc2822(self.created), "date_updated": _rfc2822(self.updated),
            "date_sent": _rfc2822(self.sent) if self.sent is not None else None, "direction": "outbound-api",
            "error_code": self.error_code, "error_message": None, "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid, "num_media": "0",
            "num_segments": str(segments(self.body)), "price": None, "price_unit": "USD", "sid": self.sid,
            "status": self.status, "subresource_uris": {"media": f"{uri}/Media.json"}, "to": self.to,
            "uri": f"{uri}.json",
        }


@dataclass
class TwilioEmulator:
    accounts: dict[str, str]  # AccountSid -> AuthToken
    api_keys: dict[str, tuple[str, str]]  # SKxxx -> (AccountSid, secret)
    numbers: dict[str, list[str]]  # AccountSid -> its phone numbers
    services: dict[str, tuple[str, list[str]]]  # MGxxx -> (AccountSid, sender numbers)
    outcomes: dict[str, tuple[str, int]]  # To -> (final status, error code)
    status_delay: float
    callback_timeout: float
    faults: FaultInjector
    messages: dict[str, Message] = field(default_factory=dict)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def authenticate(self, header: str | None) -> str | None:
        """The AccountSid the credentials belong to, or None."""
        scheme, _, credentials = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if user in self.accounts and hmac.compare_digest(self.accounts[user], password):
            return user
        key = self.api_keys.get(user)
        if key is not None and hmac.compare_digest(key[1], password):
            return key[0]
        return None

    # -- the background life of a message ---------------------------------------------------

    def start(self, message: Message) -> None:
        task = asyncio.get_running_loop().create_task(self._progress(message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _progress(self, message: Message) -> None:
        outcome = self.outcomes.get(message.to)
        steps: list[tuple[str, int | None]] = []
        if message.status == "accepted":
            steps.append(("queued", None))
        if outcome is not None and outcome[0] == "failed":
            steps.append(("failed", outcome[1]))
        else:
            steps += [("sending", None), ("sent", None)]
            steps.append(outcome if outcome is not None else ("delivered", None))
        for status, error in steps:
            await asyncio.sleep(self.status_delay)
            if status == "queued" and message.from_ is None and message.messaging_service_sid:
                message.from_ = self.services[message.messaging_service_sid][1][0]
            message.status, message.updated = status, time.time()
            if status == "sent":
                message.sent = message.updated
            if error is not None:
                message.error_code = error
            message.history.append(status)
            if status in CALLBACK_STATUSES and message.status_callback:
                await self._callback(message)

    async def _callback(self, message: Message) -> None:
        url = message.status_callback
        assert url is not None
        params = {"MessageSid": message.sid, "SmsSid": message.sid, "MessageStatus": message.status,
                  "SmsStatus": message.status, "AccountSid": message.account_sid, "To": message.to,
                  "From": message.from_ or "", "ApiVersion": API_VERSION}
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if message.error_code is not None:
            params["ErrorCode"] = str(message.error_code)
        signature = twilio_signature(self.accounts[message.account_sid], url, params)
        entry: dict[str, Any] = {"url": url, "params": params, "signature": signature, "status": None,
                                 "error": None}
        self.callbacks.append(entry)
        try:
            async with httpx.AsyncClient(timeout=self.callback_timeout) as client:
                answer = await client.post(url, data=params, headers={
                    "X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"})
            entry["status"] = answer.status_code
        except httpx.HTTPError as exc:  # Twilio logs the failure (error 11200) and moves on
            entry["error"] = f"{type(exc).__name__}: {exc}"

    async def settle(self, timeout: float = 30.0) -> int:
        pending = list(self.tasks)
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return len(pending)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _emulator(request: Request) -> TwilioEmulator:
    emulator: TwilioEmulator = request.app.state.emulator
    return emulator


def _valid_callback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _create(emulator: TwilioEmulator, account: str, form: Mapping[str, str]) -> Message:
    to, sender, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
    body, callback = form.get("Body"), form.get("StatusCallback")
    if not to:
        raise TwilioError(400, 21604, "A 'To' phone number is required.")
    if not _E164.fullmatch(to):
        raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
    if not sender and not service:
        raise TwilioError(400, 21603, "A 'From' phone number is required.")
    if service:
        owner = emulator.services.get(service)
        if owner is None or owner[0] != account or not owner[1]:
            raise TwilioError(400, 21701, f"The Messaging Service Sid {service} is invalid.")
    if sender:
        if not _E164.fullmatch(sender):
            raise TwilioError(400, 21212, f"Invalid From Number (caller ID): {sender}")
        if sender not in emulator.numbers.get(account, []):
            raise TwilioError(400, 21606, f"The From phone number {sender} is not a valid, SMS-capable inbound "
                                          "phone number or short code for your account.")
        if sender == to:
            raise TwilioError(400, 21266, "'To' and 'From' number cannot be the same")
    if not body:
        raise TwilioError(400, 21602, "Message body is required.")
    if len(body) > MAX_BODY:
        raise TwilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    if callback is not None and not _valid_callback(callback):
        raise TwilioError(400, 21609, f"Invalid StatusCallback url: {callback}")
    now = time.time()
    status = "accepted" if service and not sender else "queued"
    message = Message("SM" + secrets.token_hex(16), account, to, sender or None, service or None, body, callback,
                      now, status, now, history=[status])
    emulator.messages[message.sid] = message
    return message


def _authorized(request: Request) -> str | Response:
    emulator = _emulator(request)
    account = emulator.authenticate(request.headers.get("authorization"))
    if account is None or account != request.path_params["account"]:
        return error_response(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
    return account


async def _faulted(request: Request) -> tuple[dict[str, Any], FaultRule | None, Response | None]:
    emulator = _emulator(request)
    raw = await request.body()
    entry = {"at": time.time(), "method": request.method, "path": request.url.path, "query": dict(request.query_params),
             "form": dict(httpx.QueryParams(raw.decode("utf-8", "replace"))) if raw else {}, "status": None}
    emulator.requests.append(entry)
    rule = emulator.faults.pick(request.url.path)
    if rule is None or rule.process:
        return entry, rule, None
    return entry, rule, await _fault(rule)


async def _fault(rule: FaultRule) -> Response | None:
    if rule.delay:
        await asyncio.sleep(rule.delay)
    if not rule.fails_response:
        return None
    if rule.drop or rule.status is None:
        return fault_response(rule)
    headers = {"Retry-After": str(int(rule.retry_after))} if rule.retry_after is not None else {}
    if rule.status == 429:
        return error_response(429, 20429, "Too Many Requests", headers)
    return error_response(rule.status, 20500 if rule.status >= 500 else 20001,
                          "Internal Server Error" if rule.status >= 500 else "emulated failure (fault injection)",
                          headers)


async def _api(request: Request, handle: Callable[[str], Awaitable[Response]], *,
               fail_after_processing: bool = False) -> Response:
    """An API request: recorded, faulted, authenticated (Basic), then ``handle(account)``."""
    entry, rule, response = await _faulted(request)
    if response is None:
        account = _authorized(request)
        response = account if isinstance(account, Response) else await handle(account)
        if fail_after_processing and rule is not None and rule.process:
            response = await _fault(rule) or response
    entry["status"] = "dropped" if rule is not None and rule.drop else response.status_code
    return response


async def create_message(request: Request) -> Response:
    async def handle(account: str) -> Response:
        form = dict(httpx.QueryParams((await request.body()).decode("utf-8", "replace")))
        try:
            message = _create(_emulator(request), account, form)
            _emulator(request).start(message)
            return _json(message.as_json(), 201)
        except TwilioError as exc:
            return error_response(exc.status, exc.code, exc.message)

    return await _api(request, handle, fail_after_processing=True)


async def get_message(request: Request) -> Response:
    async def handle(account: str) -> Response:
        message = _emulator(request).messages.get(request.path_params["sid"])
        if message is None or message.account_sid != account:
            return error_response(404, 20404, f"The requested resource {request.url.path} was not found")
        return _json(message.as_json())

    return await _api(request, handle)


async def list_messages(request: Request) -> Response:
    async def handle(account: str) -> Response:
        params = request.query_params
        found = [m for m in _emulator(request).messages.values() if m.account_sid == account
                 and params.get("To", m.to) == m.to and params.get("From", m.from_) == m.from_]
        found.reverse()  # newest first, as Twilio lists them
        size = int(params.get("PageSize", "50")) if params.get("PageSize", "50").isdigit() else 50
        uri = f"/{API_VERSION}/Accounts/{account}/Messages.json"
        return _json({"messages": [m.as_json() for m in found[:size]], "page": 0, "page_size": size,
                      "start": 0, "end": max(0, min(size, len(found)) - 1), "uri": uri,
                      "first_page_uri": f"{uri}?PageSize={size}&Page=0", "next_page_uri": None,
                      "previous_page_uri": None})

    return await _api(request, handle)


# -- control ----------------------------------------------------------------------------------


async def control_messages(request: Request) -> Response:
    found = [m.as_json() | {"history": m.history, "status_callback": m.status_callback}
             for m in _emulator(request).messages.values()
             if request.query_params.get("to", m.to) == m.to and request.query_params.get("status", m.status)
             == m.status]
    return _json({"messages": found, "total": len(found)})


async def control_callbacks(request: Request) -> Response:
    return _json({"callbacks": _emulator(request).callbacks, "total": len(_emulator(request).callbacks)})


async def control_requests(request: Request) -> Response:
    emulator = _emulator(request)
    if request.method == "DELETE":
        emulator.requests.clear()
    return _json({"requests": emulator.requests, "total": len(emulator.requests)})


async def control_settle(request: Request) -> Response:
    return _json({"settled": await _emulator(request).settle()})


async def control_outcomes(request: Request) -> Response:
    emulator = _emulator(request)
    try:
        spec = orjson.loads(await request.body())
        for number, outcome in spec.items():
            if outcome.get("status") not in ("undelivered", "failed", "delivered") or not _E164.fullmatch(number):
                raise ValueError(number)
            if outcome["status"] == "delivered":
                emulator.outcomes.pop(number, None)
            else:
                emulator.outcomes[number] = (outcome["status"], int(outcome.get("error_code", 30003)))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return _json({"error": 'expected {"+E164": {"status": "undelivered"|"failed"|"delivered", '
                               '"error_code"?: N}}'}, 400)
    return _json({"outcomes": {n: {"status": s, "error_code": c} for n, (s, c) in emulator.outcomes.items()}})


async def control_faults(request: Request) -> Response:
    return await faults_control(_emulator(request).faults, request.method, await request.body())


async def control_reset(request: Request) -> Response:
    emulator = _emulator(request)
    for task in list(emulator.tasks):
        task.cancel()
    emulator.messages.clear()
    emulator.callbacks.clear()
    emulator.requests.clear()
    emulator.faults.clear()
    return _json({"success": True})


def create_twilio_emulator(
    accounts: Mapping[str, str] | None = None,
    *,
    numbers: Mapping[str, Iterable[str]] | Iterable[str] = (DEFAULT_FROM,),
    messaging_services: Mapping[str, Iterable[str]] | None = None,
    api_keys: Mapping[str, tuple[str, str]] | None = None,
    outcomes: Mapping[str, tuple[str, int]] | None = None,
    status_delay_seconds: float = 0.5,
    callback_timeout: float = 5.0,
    fault_seed: int | None = None,
) -> Starlette:
    """Build the emulator app (``app.state.emulator`` is the ``TwilioEmulator``).

    ``accounts``: AccountSid -> AuthToken (default one test account, ``DEFAULT_ACCOUNT_SID`` /
    ``DEFAULT_AUTH_TOKEN``). ``numbers``: the phone numbers that may be ``From``, a list for every
    account or a mapping AccountSid -> numbers. ``messaging_services``: ``MG...`` -> its sender
    numbers (they belong to the first account). ``api_keys``: ``SK...`` -> (AccountSid, secret).
    ``outcomes``: ``To`` number -> (``undelivered``|``failed``, error code).
    ``status_delay_seconds``: the time between two statuses of a message.
    """
    accounts = dict(accounts) if accounts is not None else {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN}
    first = next(iter(accounts))
    if isinstance(numbers, Mapping):
        by_account = {sid: list(nums) for sid, nums in numbers.items()}
    else:
        listed = list(numbers)
        by_account = {sid: list(listed) for sid in accounts}
    emulator = TwilioEmulator(
        accounts=accounts,
        api_keys=dict(api_keys or {}),
        numbers=by_account,
        services={sid: (first, list(nums)) for sid, nums in (messaging_services or {}).items()},
        outcomes=dict(outcomes or {}),
        status_delay=status_delay_seconds,
        callback_timeout=callback_timeout,
        faults=FaultInjector(seed=fault_seed),
    )
    base = f"/{API_VERSION}/Accounts/{{account}}"
    routes = [
        Route(f"{base}/Messages.json", create_message, methods=["POST"]),
        Route(f"{base}/Messages.json", list_messages, methods=["GET"]),
        Route(f"{base}/Messages/{{sid}}.json", get_message, methods=["GET"]),
        Route("/_emulator/messages", control_messages, methods=["GET"]),
        Route("/_emulator/callbacks", control_callbacks, methods=["GET"]),
        Route("/_emulator/requests", control_requests, methods=["GET", "DELETE"]),
        Route("/_emulator/settle", control_settle, methods=["POST"]),
        Route("/_emulator/outcomes", control_outcomes, methods=["POST"]),
        Route("/_emulator/faults", control_faults, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/reset", control_reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emulator
    return app


async def serve_twilio_emulator(host: str = "127.0.0.1", port: int = 8768, accounts: Mapping[str, str] | None = None,
                                *, numbers: Iterable[str] = (DEFAULT_FROM,), status_delay_seconds: float = 0.5,
                                log_level: str = "info") -> None:
    """Run the emulator under uvicorn until cancelled (``sgbridge emulate twilio``)."""
    from sgbridge.emulators.serving import serve_app

    app = create_twilio_emulator(accounts, numbers=list(numbers), status_delay_seconds=status_delay_seconds)
    await serve_app(app, host=host, port=port, log_level=log_level)
