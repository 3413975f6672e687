"""The requests of each Dotdigital action, as Segment's destination makes them.

| action | requests |
|---|---|
| addContactToList | [data fields, read once] → ``PATCH /contacts/v3/{channel}/{value}?merge-option=overwrite`` |
| removeContactFromList | ``GET /contacts/v3/{channel}/{value}`` → ``DELETE /v2/address-books/{list}/contacts/{id}`` |
| enrolContact | ``PATCH /contacts/v3/{channel}/{value}`` (creates or finds) → ``POST /v2/programs/enrolments`` |
| sendEmailCampaign | ``GET /contacts/v3/email/{email}`` → ``POST /v2/campaigns/send`` (or ``send-time-optimised``) |
| sendTransactionalEmail | ``POST /v2/email`` |
| sendSms | ``POST /v2/sms-messages/send-to/{digits}`` |
| sendTransactionalSms | ``POST /cpaas/messages`` |

A read that fails (a bad login, an unknown contact) writes nothing, as in Segment's code. 408, 429
and 5xx are retried (the contact's later actions wait); other answers reject the event with
Dotdigital's reason. An email, SMS or campaign send goes out at most once per Segment messageId:
the outbox (``MailGuard``, in the journal) marks it before the request, and a send whose outcome is
unknown (a 5xx, a timeout after sending) is held for review, not sent again, as ``sendEmail`` is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from sgbridge.actions.dotdigital.api import DotdigitalApi, list_named, rejection
from sgbridge.actions.dotdigital.plans import defined
from sgbridge.actions.executor import Context
from sgbridge.actions.http import Rejection, Transient, response_json
from sgbridge.actions.operations import DotdigitalStep, Invalid
from sgbridge.actions.outbox import SENT, UNSENT, after_transient, earlier_result
from sgbridge.actions.results import OK, REJECTED, RETRY, Item, OpResult

SENDS = frozenset({"sendEmailCampaign", "sendTransactionalEmail", "sendSms", "sendTransactionalSms"})


def _api(ctx: Context) -> DotdigitalApi:
    assert isinstance(ctx.api, DotdigitalApi)
    return ctx.api


def _js_boolean(value: Any) -> bool:
    return bool(value) and value != "" and not (isinstance(value, float) and value != value)


def _iso_date(value: str) -> str:
    """``new Date(value).toISOString()`` for the ISO 8601 texts Dotdigital takes."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"Data field value {value} is not a valid date") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def validated_data_fields(api: DotdigitalApi, values: dict[str, Any]) -> dict[str, Any]:
    """The data fields by the account's definitions (validateDataFields): unknown names and values
    of the wrong type are refused with Segment's messages; dates become ISO, booleans booleans."""
    fields = {f["name"]: f for f in await api.data_fields()}
    out: dict[str, Any] = {}
    for key, value in values.items():
        found = fields.get(key)
        if found is None:
            raise Invalid(f"Data field {key} not found in Dotdigital")
        kind = found.get("type")
        if kind == "Date":
            if not isinstance(value, str):
                raise Invalid(f"Data field {key} value {value} is not a valid date")
            value = _iso_date(value)
        elif kind == "Numeric":
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if isinstance(value, str):
                try:
                    float(value) if value.strip() else 0.0
                except ValueError:
                    numeric = False
                else:
                    numeric = True
            if not numeric:
                raise Invalid(f"Data field {key} value {value} is not a valid number")
        elif kind == "Boolean":
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                value = value.strip().lower() == "true"
            value = _js_boolean(value)
        elif kind == "String":
            if not isinstance(value, str):
                raise Invalid(f"Data field {key} value {value} is not a valid string")
            value = value.strip()
        out[key] = value
    return out


def upsert_body(payload: dict[str, Any]) -> dict[str, Any]:
    """The contact upsert of Add or Update Contact (DDContactApi.upsertContact)."""
    email, mobile = payload.get("emailIdentifier"), payload.get("mobileNumberIdentifier")
    identifiers = {**({"email": email} if email else {}), **({"mobileNumber": mobile} if mobile else {})}
    channels: dict[str, Any] = {}
    if email:
        channels["email"] = {"emailType": payload.get("emailType", "html"),
                             "optInType": payload.get("optInType", "single")}
        if payload.get("updateEmailSubscription", True):
            status = payload.get("emailSubscriptionStatus", "subscribed")
            if status == "subscribed":
                if payload.get("emailResubscribe", False):
                    channels["email"]["status"] = "subscribed"
                    without = bool(payload.get("resubscribeWithoutChallengeEmail", False))
                    options: dict[str, Any] = {"resubscribeWithNoChallenge": without}
                    if not without:
                        for name in ("preferredLocale", "redirectUrlAfterChallenge"):
                            if payload.get(name):
                                options[name] = payload[name]
                    channels["email"]["resubscribeOptions"] = options
            elif status:
                channels["email"]["status"] = status
    if mobile and payload.get("updateSmsSubscription", True) and payload.get("smsSubscriptionStatus", "subscribed"):
        channels["sms"] = {"status": payload.get("smsSubscriptionStatus", "subscribed")}
    body: dict[str, Any] = {"identifiers": identifiers, "channelProperties": channels}
    if payload.get("listId"):
        body["lists"] = [payload["listId"]]
    if payload.get("dataFields") is not None:
        body["dataFields"] = payload["dataFields"]
    return body


def _channel(payload: dict[str, Any]) -> tuple[str, str]:
    channel = str(payload.get("channelIdentifier") or "email")
    value = payload.get("emailIdentifier") if channel == "email" else payload.get("mobileNumberIdentifier")
    return channel, str(value)


async def _ok(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 300:
        raise rejection(response, what)
    return response_json(response)


async def _contact_id(api: DotdigitalApi, item: Item, channel: str, value: str) -> Any:
    found = await _ok(await api.call("GET", f"/contacts/v3/{channel}/{value}", owners=[item.event.ref]),
                      "find the contact")
    contact_id = found.get("contactId") if isinstance(found, dict) else None
    if contact_id is None:
        raise Rejection(None, "find the contact: Dotdigital's answer has no contactId")
    return contact_id


async def _add_or_update(api: DotdigitalApi, item: Item, op: DotdigitalStep) -> OpResult:
    payload = dict(op.payload)
    if payload.get("dataFields"):
        payload["dataFields"] = await validated_data_fields(api, dict(payload["dataFields"]))
    channel, value = _channel(payload)
    response = await api.call("PATCH", f"/contacts/v3/{channel}/{value}?merge-option=overwrite",
                              body=upsert_body(payload), owners=[item.event.ref])
    found = await _ok(response, "upsert the contact")
    return OpResult(OK, status=response.status_code,
                    detail={"contact_id": found.get("contactId")} if isinstance(found, dict) else {})


async def _remove_from_list(api: DotdigitalApi, item: Item, op: DotdigitalStep) -> OpResult:
    channel, value = _channel(op.payload)
    contact_id = await _contact_id(api, item, channel, value)
    response = await api.call("DELETE", f"/v2/address-books/{op.payload['listId']}/contacts/{contact_id}",
                              owners=[item.event.ref])
    await _ok(response, "remove the contact from the list")
    return OpResult(OK, status=response.status_code)


async def _enrol(api: DotdigitalApi, item: Item, op: DotdigitalStep) -> OpResult:
    payload = op.payload
    channel, value = _channel(payload)
    identifiers = {k: payload[f] for k, f in (("email", "emailIdentifier"), ("mobileNumber", "mobileNumberIdentifier"))
                   if payload.get(f) is not None}
    contact = await _ok(await api.call("PATCH", f"/contacts/v3/{channel}/{value}", body={"identifiers": identifiers},
                                       owners=[item.event.ref]), "create or find the contact")
    contact_id = contact.get("contactId") if isinstance(contact, dict) else None
    response = await api.call("POST", "/v2/programs/enrolments",
                              body=defined({"contacts": [contact_id], "programId": payload.get("programId")}),
                              owners=[item.event.ref])
    await _ok(response, "enrol the contact")
    return OpResult(OK, status=response.status_code)


async def _send(api: DotdigitalApi, item: Item, op: DotdigitalStep) -> OpResult:
    """The send itself (after any read); raises Transient or Rejection."""
    payload, owners = op.payload, [item.event.ref]
    if op.action == "sendEmailCampaign":
        contact_id = await _contact_id(api, item, "email", str(payload["email"]))
        body: dict[str, Any] = defined({"campaignID": payload.get("campaignId"), "contactIDs": [contact_id]})
        path = "/v2/campaigns/send"
        if payload.get("sendTimeOptimised"):
            path = "/v2/campaigns/send-time-optimised"
        elif payload.get("sendDate") is not None:
            body["sendDate"] = payload["sendDate"]
        response = await api.call("POST", path, body=body, owners=owners)
    elif op.action == "sendTransactionalEmail":
        response = await api.call("POST", "/v2/email", body=payload["body"], owners=owners)
    elif op.action == "sendSms":
        response = await api.call("POST", f"/v2/sms-messages/send-to/{payload['to']}", body=payload["body"],
                                  owners=owners)
    else:
        response = await api.call("POST", "/cpaas/messages", body=payload["body"], owners=owners)
    await _ok(response, op.action)
    return OpResult(OK, status=response.status_code)


async def _sync_audience(api: DotdigitalApi, item: Item, op: DotdigitalStep) -> OpResult:
    """Dotdigital Audiences: an entry upserts the contact onto the audience's list; an exit takes it
    off the list. Segment's code deletes the whole contact on an exit; sgbridge keeps the contact
    (its other lists, its data), as the issue asks: a contact unknown to Dotdigital, or not on the
    list, is already out."""
    payload = op.payload
    channel, value = payload["channel"], payload["value"]
    list_id = payload["listId"] if "listId" in payload else await list_named(
        api, payload["listName"], str(payload.get("visibility") or "Private"))
    # The data fields are checked on an exit too (Segment's code checks them first, whatever comes).
    fields = await validated_data_fields(api, dict(payload["dataFields"])) if payload.get("dataFields") else None
    if payload["member"]:
        email, mobile = payload.get("emailIdentifier"), payload.get("mobileNumberIdentifier")
        body: dict[str, Any] = {
            "identifiers": {**({"email": email} if email else {}), **({"mobileNumber": mobile} if mobile else {})},
            "channelProperties": {**({"email": {"status": "subscribed", "emailType": "html", "optInType": "single"}}
                                     if email else {}), **({"sms": {"status": "subscribed"}} if mobile else {})},
            "lists": [list_id]}
        if fields:
            body["dataFields"] = fields
        response = await api.call("PATCH", f"/contacts/v3/{channel}/{value}", body=body, owners=[item.event.ref])
        await _ok(response, "add the contact to the audience's list")
        return OpResult(OK, status=response.status_code)
    found = await api.call("GET", f"/contacts/v3/{channel}/{value}", owners=[item.event.ref])
    if found.status_code == 404:
        return OpResult(OK, "no such contact in Dotdigital: not on the list", 200)
    contact = await _ok(found, "find the contact")
    contact_id = contact.get("contactId") if isinstance(contact, dict) else None
    if contact_id is None:
        raise Rejection(None, "find the contact: Dotdigital's answer has no contactId")
    response = await api.call("DELETE", f"/v2/address-books/{list_id}/contacts/{contact_id}",
                              owners=[item.event.ref])
    if response.status_code == 404:
        return OpResult(OK, "the contact was not on the list", 200)
    await _ok(response, "take the contact off the audience's list")
    return OpResult(OK, status=response.status_code)


ACTIONS: dict[str, Callable[[DotdigitalApi, Item, DotdigitalStep], Awaitable[OpResult]]] = {
    "addContactToList": _add_or_update, "removeContactFromList": _remove_from_list, "enrolContact": _enrol,
    "syncAudience": _sync_audience,
}


async def _run_one(item: Item, ctx: Context, earlier: dict[str, str], outcomes: dict[str, tuple[str, str | None]]
                   ) -> None:
    op = item.op
    assert isinstance(op, DotdigitalStep)
    api = _api(ctx)
    send = op.action in SENDS and bool(op.key)
    decided = earlier_result(earlier.get(op.key), ctx.replay) if send else None
    if decided is not None:
        item.settle(decided)
        return
    try:
        result = await (_send(api, item, op) if op.action in SENDS else ACTIONS[op.action](api, item, op))
    except Transient as exc:
        item.settle(after_transient(op.key, exc, outcomes) if send
                    else OpResult(RETRY, exc.reason, exc.status, after=exc.after))
        return
    except Rejection as exc:
        result = OpResult(REJECTED, exc.reason, exc.status)
    except Invalid as exc:
        result = OpResult(REJECTED, exc.message, exc.status, exc.code)
    if send:
        outcomes[op.key] = (SENT, None) if result.kind == OK else (UNSENT, None)
    item.settle(result)


def _upserts_from(mine: list[Item], start: int) -> list[Item]:
    """The run of Add or Update Contact steps of one contact, by one channel, from ``start``."""
    first = mine[start].op
    assert isinstance(first, DotdigitalStep)
    if first.action != "addContactToList":
        return [mine[start]]
    run = [mine[start]]
    for item in mine[start + 1:]:
        op = item.op
        if not isinstance(op, DotdigitalStep) or op.action != "addContactToList" \
                or _channel(op.payload) != _channel(first.payload):
            break
        run.append(item)
    return run


def merged_upsert(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Several upserts of one contact as one, with the effect of sending them in order with
    ``merge-option=overwrite``: the later values win, lists and data fields add up."""
    merged: dict[str, Any] = {"identifiers": {}, "channelProperties": {}}
    for body in bodies:
        merged["identifiers"].update(body.get("identifiers") or {})
        merged["channelProperties"].update(body.get("channelProperties") or {})
        for listed in body.get("lists") or []:
            merged.setdefault("lists", [])
            if listed not in merged["lists"]:
                merged["lists"].append(listed)
        if body.get("dataFields") is not None:
            merged["dataFields"] = {**merged.get("dataFields", {}), **body["dataFields"]}
    return merged


async def _coalesced_upserts(run: list[Item], ctx: Context) -> None:
    """A contact's consecutive changes in one PATCH (each event's data fields checked on its own:
    a bad one is rejected alone)."""
    api = _api(ctx)
    bodies: list[tuple[Item, dict[str, Any]]] = []
    for item in run:
        op = item.op
        assert isinstance(op, DotdigitalStep)
        payload = dict(op.payload)
        try:
            if payload.get("dataFields"):
                payload["dataFields"] = await validated_data_fields(api, dict(payload["dataFields"]))
        except Transient as exc:
            for waiting in run:
                waiting.settle(OpResult(RETRY, exc.reason, exc.status, after=exc.after))
            return
        except (Rejection, Invalid) as exc:
            reason = exc.reason if isinstance(exc, Rejection) else exc.message
            item.settle(OpResult(REJECTED, reason, getattr(exc, "status", 400)))
            continue
        bodies.append((item, upsert_body(payload)))
    if not bodies:
        return
    first = bodies[0][0].op
    assert isinstance(first, DotdigitalStep)
    channel, value = _channel(first.payload)
    owners = [i.event.ref for i, _ in bodies]
    try:
        response = await api.call("PATCH", f"/contacts/v3/{channel}/{value}?merge-option=overwrite",
                                  body=merged_upsert([b for _, b in bodies]), owners=owners)
        await _ok(response, "upsert the contact")
        result = OpResult(OK, status=response.status_code)
    except Transient as exc:
        result = OpResult(RETRY, exc.reason, exc.status, after=exc.after)
    except Rejection as exc:
        result = OpResult(REJECTED, exc.reason, exc.status)
    for item, _ in bodies:
        item.settle(result)


async def run_dotdigital(items: list[Item], ctx: Context) -> None:
    """One round: each contact's actions one after another, in its events' order; the contacts side
    by side (the API's concurrency bounds it). A contact whose action must be tried again stops
    there: its later actions wait for the next try (the executor reports them as waiting)."""
    keys = [i.op.key for i in items if isinstance(i.op, DotdigitalStep) and i.op.action in SENDS and i.op.key]
    earlier = await ctx.mail_guard.begin(keys)
    outcomes: dict[str, tuple[str, str | None]] = {}
    by_contact: dict[int, list[Item]] = {}
    for item in items:
        by_contact.setdefault(item.group, []).append(item)

    async def in_order(mine: list[Item]) -> None:
        index = 0
        while index < len(mine):
            run = _upserts_from(mine, index)
            if len(run) > 1:
                await _coalesced_upserts(run, ctx)
                index += len(run)
            else:
                await _run_one(mine[index], ctx, earlier, outcomes)
                index += 1
            if any(i.result is not None and i.result.kind == RETRY for i in mine[:index]):
                return  # the executor holds the contact back: its later actions come back as waiting

    await asyncio.gather(*(in_order(mine) for mine in by_contact.values()))
    await ctx.mail_guard.finish(outcomes)
