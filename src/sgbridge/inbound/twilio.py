"""``POST /webhooks/twilio``: Twilio's message status callbacks → the journal, as track calls.

``twilio.sendSms`` sets each message's ``StatusCallback`` to this endpoint (its ``statusCallback``
field), with the Segment user and messageId of the event that sent it in the query
(``sgbridge_user``, ``sgbridge_anonymous``, ``sgbridge_message``). Twilio posts, form-encoded,
``MessageSid``, ``MessageStatus`` (queued, sent, delivered, undelivered, failed…), ``To``,
``From``, ``ErrorCode``…, signed with ``X-Twilio-Signature`` = base64(HMAC-SHA1(auth token, the
URL it called + each parameter name and value, sorted by name)). A request whose signature does
not verify is refused (401); with no auth token configured every request is.

Each callback is stored once (keyed by message and status: Twilio may post one again) as a track
call on the Segment stream — "SMS Queued", "SMS Sent", "SMS Delivered", "SMS Undelivered", "SMS
Failed" — with the user of the event that sent the message, so workflows can wait for it and
action triggers can take it (``context.library.name = "sgbridge-twilio"``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from sgbridge.inbound.asgi import BodyTooLarge, ClientGone, Receive, Scope, Send, header, read_body, send_json
from sgbridge.inbound.segment import TWILIO_SOURCE
from sgbridge.jsonbytes import dumps_kept
from sgbridge.model import InboundEvent, InboundRequest
from sgbridge.routing.sendgrid_to_segment import iso_utc_ms

if TYPE_CHECKING:  # the settings import this module: no journal at import time
    from sgbridge.journal import Journal

TWILIO_PATH = "/webhooks/twilio"
SOURCE = TWILIO_SOURCE
LIBRARY = "sgbridge-twilio"
MAX_BODY = 64 * 1024


class TwilioInboundSettings(BaseModel):
    """Twilio's status callbacks (``/webhooks/twilio``)."""

    model_config = ConfigDict(extra="forbid")

    auth_token: SecretStr | None = Field(None, description="the Twilio account's auth token, which signs the "
                                         "callbacks (TWILIO_AUTH_TOKEN); none: every callback is refused")
    public_url: str | None = Field(None, description="the URL Twilio calls, e.g. https://bridge.example.com/webhooks/"
                                   "twilio: signatures are computed over it (set it behind a proxy)")


def twilio_signature(url: str, params: dict[str, str], token: str) -> str:
    """Twilio's request signature of a form POST."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _url(scope: Scope, public_url: str | None) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    if public_url:
        base = public_url.rstrip("/")
    else:
        host = header(scope, b"host") or ""
        scheme = header(scope, b"x-forwarded-proto") or scope.get("scheme", "http")
        base = f"{scheme}://{host}{scope['path']}"
    return f"{base}?{query}" if query else base


def status_track(params: dict[str, str], query: dict[str, str], now: float) -> dict[str, Any]:
    """The track call a status callback becomes."""
    sid, status = params["MessageSid"], params["MessageStatus"]
    properties = {name: params[key] for name, key in (
        ("message_sid", "MessageSid"), ("status", "MessageStatus"), ("to", "To"), ("from", "From"),
        ("error_code", "ErrorCode"), ("messaging_service_sid", "MessagingServiceSid"),
        ("account_sid", "AccountSid")) if params.get(key)}
    if query.get("sgbridge_message"):
        properties["sent_for_message_id"] = query["sgbridge_message"]
    call: dict[str, Any] = {
        "type": "track", "event": f"SMS {status.replace('_', ' ').title()}", "messageId": f"twilio-{sid}-{status}",
        "timestamp": iso_utc_ms(now),
        "properties": properties, "context": {"library": {"name": LIBRARY}}}
    if query.get("sgbridge_user"):
        call["userId"] = query["sgbridge_user"]
    if query.get("sgbridge_anonymous"):
        call["anonymousId"] = query["sgbridge_anonymous"]
    if "userId" not in call and "anonymousId" not in call:
        call["anonymousId"] = f"sms:{params.get('To', '')}"
    return call


class TwilioInbound:
    def __init__(self, settings: TwilioInboundSettings, journal: Journal, on_append: Callable[[], None]) -> None:
        self.token = settings.auth_token.get_secret_value() if settings.auth_token else None
        self.public_url = settings.public_url
        self.journal = journal
        self.on_append = on_append

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(scope, receive, MAX_BODY)
        except BodyTooLarge:
            await send_json(send, 413, {"error": f"body over {MAX_BODY} bytes"})
            return
        except ClientGone:
            return
        if self.token is None:
            await send_json(send, 401, {"error": "no Twilio auth token configured (TWILIO_AUTH_TOKEN): callbacks "
                                                 "cannot be verified, none is taken"})
            return
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        given = header(scope, b"x-twilio-signature") or ""
        expected = twilio_signature(_url(scope, self.public_url), params, self.token)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            await send_json(send, 401, {"error": "X-Twilio-Signature does not verify (is twilio_inbound.public_url "
                                                 "the URL Twilio calls?)"})
            return
        if not params.get("MessageSid") or not params.get("MessageStatus"):
            await send_json(send, 400, {"error": "a status callback needs MessageSid and MessageStatus"})
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        now = time.time()
        call = status_track(params, query, now)
        key = hashlib.blake2b(f"{SOURCE}\0{call['messageId']}".encode(), digest_size=16).digest()
        event = InboundEvent(SOURCE, "track", key, key, dumps_kept(call))
        result = await self.journal.append(InboundRequest(SOURCE, now, len(body), [event]))
        self.on_append()
        await send_json(send, 200, {"stored": result.accepted, "duplicates": result.duplicates})
