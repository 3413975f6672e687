"""``twilio.sendSms``: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded ``To``,
``From`` or ``MessagingServiceSid``, ``Body``, ``StatusCallback``; HTTP Basic with the account SID
(or an API key SID) and its secret. A 201 is sent (its ``sid`` is kept); 400s (Twilio's ``code``
and ``message``: 21211 invalid To, 21606 From not yours…) reject the event; 429 and 5xx are
retried. Each message goes out at most once per Segment messageId (the outbox of ``sendEmail``):
a send whose outcome is unknown is held for review."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from sgbridge.actions.executor import Context
from sgbridge.actions.http import ApiClient, Transient, response_json
from sgbridge.actions.operations import Invalid, Operation, TwilioMessage
from sgbridge.actions.outbox import SENT, UNSENT, Outcomes, after_transient, run_guarded
from sgbridge.actions.results import OK, REJECTED, Item, OpResult
from sgbridge.destinations.classify import short_body

DEFAULT_ENDPOINT = "https://api.twilio.com"
E164_HINT = "a number in E.164 form, such as +15551234567"


@dataclass
class TwilioApi(ApiClient):
    authorization: str = ""
    endpoint: str = DEFAULT_ENDPOINT
    account_sid: str = ""

    @classmethod
    def from_settings(cls, client: httpx.AsyncClient, settings: dict[str, Any], endpoint: str | None,
                      **options: Any) -> TwilioApi:
        account = str(settings.get("accountSid") or "")
        user = str(settings.get("apiKeySid") or account)
        token = base64.b64encode(f"{user}:{settings.get('authToken') or ''}".encode()).decode()
        base = str(endpoint or settings.get("endpoint") or DEFAULT_ENDPOINT)
        return cls(client, f"Basic {token}", base, account_sid=account, **options)


def plan_send_sms(payload: dict[str, Any], event: dict[str, Any], now: float) -> list[Operation]:
    to = str(payload.get("to") or "").strip()
    if not to.startswith("+") or not to[1:].isdigit():
        raise Invalid(f"To must be {E164_HINT}, not {to!r}")
    if not payload.get("from") and not payload.get("messagingServiceSid"):
        raise Invalid("give from (a number of the account) or messagingServiceSid")
    form = {"To": to, "Body": payload.get("body")}
    if payload.get("messagingServiceSid"):
        form["MessagingServiceSid"] = payload["messagingServiceSid"]
    else:
        form["From"] = payload["from"]
    if payload.get("statusCallback"):
        # Who the message was for, and for which event: the callbacks come back as that user's events.
        who = {name: str(event[field]) for name, field in (("sgbridge_user", "userId"),
                                                           ("sgbridge_anonymous", "anonymousId"),
                                                           ("sgbridge_message", "messageId")) if event.get(field)}
        url = str(payload["statusCallback"])
        form["StatusCallback"] = url + ("&" if "?" in url else "?") + urlencode(who) if who else url
    message_id = event.get("messageId")
    return [TwilioMessage(form, f"twilio:sms:{message_id}" if message_id else "")]


def _reason(response: httpx.Response) -> str:
    data = response_json(response)
    if isinstance(data, dict) and data.get("message"):
        return f"Twilio {data.get('code')}: {data['message']}"
    return short_body(response)


async def _send(item: Item, ctx: Context, outcomes: Outcomes) -> None:
    op, api = item.op, ctx.api
    assert isinstance(op, TwilioMessage) and isinstance(api, TwilioApi)
    try:
        response = await api.call("POST", f"/2010-04-01/Accounts/{api.account_sid}/Messages.json",
                                  content=urlencode(op.form).encode(), owners=[item.event.ref],
                                  content_type="application/x-www-form-urlencoded")
    except Transient as exc:
        item.settle(after_transient(op.key, exc, outcomes))
        return
    if response.status_code < 300:
        data = response_json(response)
        sid = data.get("sid") if isinstance(data, dict) else None
        outcomes[op.key] = (SENT, sid)
        item.settle(OpResult(OK, status=response.status_code, detail={"twilio_sid": sid}))
        return
    outcomes[op.key] = (UNSENT, None)
    item.settle(OpResult(REJECTED, f"send SMS: HTTP {response.status_code}: {_reason(response)}",
                         response.status_code))


def _key(item: Item) -> str:
    assert isinstance(item.op, TwilioMessage)
    return item.op.key


async def run_sms(items: list[Item], ctx: Context) -> None:
    await run_guarded(items, ctx, _key, lambda item, outcomes: _send(item, ctx, outcomes))


PLANNERS = {("twilio", "sendSms"): plan_send_sms}
