"""Dotdigital payloads → operations, with the checks Segment's code makes before any request
(identifiers, mobile numbers, addresses). Each action is one ``DotdigitalStep``: its requests
(``actions.dotdigital.steps``) run in the contact's order, one event at a time, as Segment's
destination has no batching."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sgbridge.actions.operations import DotdigitalStep, Invalid, Operation
from sgbridge.actions.sendgrid.audience_lists import PLACEHOLDER

MIN_PHONE_DIGITS = 7
# checkAndCleanEmail's expression (actions-shared/dotdigital/helpers/functions), as Segment has it
_EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+-=?^_`{|}~]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*(\.[a-zA-Z]{2,9})$"
    r"|^[\w\s]+<\s*[a-zA-Z0-9.!#$%&'*+-=?^_`{|}~]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*(\.[a-zA-Z]{2,9})\s*>$")


def clean_mobile_number(number: str) -> str:
    """Digits only, at least seven (checkAndCleanMobileNumber)."""
    digits = re.sub(r"\D+", "", number)
    if len(digits) < MIN_PHONE_DIGITS:
        raise Invalid("Invalid mobile number value")
    return digits


def clean_email(email: str) -> str:
    trimmed = email.strip()
    if not _EMAIL.match(trimmed):
        raise Invalid(f"Invalid email format: {trimmed}")
    return trimmed


def clean_emails(emails: str | None) -> list[str]:
    """A comma-separated list (cleanEmails)."""
    return [clean_email(e) for e in (emails or "").split(",") if e]


def defined(body: dict[str, Any]) -> dict[str, Any]:
    """A JSON body as JavaScript writes it: keys whose value is undefined are left out."""
    return {k: v for k, v in body.items() if v is not None}


def _channel(payload: dict[str, Any]) -> tuple[str, str]:
    """(identifier type, value) of the contact the action is for."""
    channel = payload.get("channelIdentifier") or "email"
    value = payload.get("emailIdentifier") if channel == "email" else payload.get("mobileNumberIdentifier")
    if not isinstance(value, str) or not value:
        raise Invalid("Invalid channel identifier")
    return str(channel), value


def _step(action: str, payload: dict[str, Any], identity: dict[str, str], key: str = "") -> list[Operation]:
    return [DotdigitalStep(action, payload, {k: v.lower() for k, v in identity.items()}, key)]


def _contact_step(action: str) -> Callable[[dict[str, Any], dict[str, Any], float], list[Operation]]:
    def plan(payload: dict[str, Any], event: dict[str, Any], now: float) -> list[Operation]:
        channel, value = _channel(payload)
        return _step(action, payload, {channel: value})

    return plan


def plan_send_campaign(payload: dict[str, Any], event: dict[str, Any], now: float) -> list[Operation]:
    return _step("sendEmailCampaign", payload, {"email": str(payload["email"])}, _key(event, "campaign"))


def plan_transactional_email(payload: dict[str, Any], event: dict[str, Any], now: float) -> list[Operation]:
    body = {"ToAddresses": clean_emails(payload.get("toAddresses")),
            "CCAddresses": clean_emails(payload.get("ccAddresses")),
            "BCCAddresses": clean_emails(payload.get("bccAddresses")),
            "Subject": payload.get("subject"), "FromAddress": clean_email(str(payload.get("fromAddress") or "")),
            "HtmlContent": payload.get("htmlContent"), "PlainTextContent": payload.get("plainTextContent")}
    first = body["ToAddresses"][0] if body["ToAddresses"] else ""
    return _step("sendTransactionalEmail", {"body": defined(body)}, {"email": first}, _key(event, "email"))


def plan_sms(payload: dict[str, Any], event: dict[str, Any], now: float) -> list[Operation]:
    number = clean_mobile_number(str(payload.get("to") or ""))
    return _step("sendSms", {"to": number, "body": defined({"message": payload.get("message")})},
                 {"mobileNumber": number}, _key(event, "sms"))


def plan_transactional_sms(payload: dict[str, Any], event: dict[str, Any], now: float) -> list[Operation]:
    number = clean_mobile_number(str(payload.get("to") or ""))
    body: dict[str, Any] = defined({"to": {"phoneNumber": number}, "body": payload.get("message"), "rules": ["sms"]})
    if payload.get("from") or payload.get("allow_unicode"):
        sms: dict[str, Any] = {}
        if payload.get("from"):
            sms["from"] = payload["from"]
        if payload.get("allow_unicode"):
            sms["allowUnicode"] = payload["allow_unicode"]
        body["channelOptions"] = {"sms": sms}
    if payload.get("link_shortening"):
        body["shortenLinks"] = "on"
    return _step("sendTransactionalSms", {"body": body}, {"mobileNumber": number}, _key(event, "sms"))


def audience_membership(payload: dict[str, Any]) -> bool | None:
    """The audience key's value in the traits or properties, if it is a boolean."""
    holder, key = payload.get("traits_or_props"), payload.get("computation_key")
    value = holder.get(key) if isinstance(holder, dict) and isinstance(key, str) else None
    return value if isinstance(value, bool) else None


def plan_sync_audience(payload: dict[str, Any], event: dict[str, Any], now: float) -> list[Operation]:
    """Dotdigital Audiences' Sync Audience, with Segment's checks (functions.ts ``send``)."""
    member = audience_membership(payload)
    if member is None:
        raise Invalid(f"Audience with computation_key = {payload.get('computation_key')} is missing information "
                      "about whether to add or remove the contact from the Audience.")
    email, mobile = payload.get("emailIdentifier"), payload.get("mobileNumberIdentifier")
    channel = "email" if email else "mobileNumber" if mobile else None
    value = email or mobile
    if channel is None or not value:
        raise Invalid("At least one identifier (email or mobile number) must be provided.")
    audience = str(payload.get("external_audience_id"))
    if audience.startswith(PLACEHOLDER):  # createAudienceLists: the list is found or made by name
        steps = {**payload, "member": member, "channel": channel, "value": value,
                 "listName": audience.removeprefix(PLACEHOLDER)}
        return _step("syncAudience", steps, {channel: str(value)})
    try:
        list_id = float(audience.strip() or "x")
    except ValueError:
        raise Invalid("external_audience_id must be a numeric value.") from None
    steps = {**payload, "member": member, "channel": channel, "value": value,
             "listId": int(list_id) if list_id.is_integer() else list_id}
    return _step("syncAudience", steps, {channel: str(value)})


def _key(event: dict[str, Any], kind: str) -> str:
    message_id = event.get("messageId")
    return f"dotdigital:{kind}:{message_id}" if message_id else ""


PLANNERS: dict[tuple[str, str], Callable[[dict[str, Any], dict[str, Any], float], list[Operation]]] = {
    ("dotdigital", "addContactToList"): _contact_step("addContactToList"),
    ("dotdigital", "removeContactFromList"): _contact_step("removeContactFromList"),
    ("dotdigital", "enrolContact"): _contact_step("enrolContact"),
    ("dotdigital", "sendEmailCampaign"): plan_send_campaign,
    ("dotdigital", "sendTransactionalEmail"): plan_transactional_email,
    ("dotdigital", "sendSms"): plan_sms,
    ("dotdigital", "sendTransactionalSms"): plan_transactional_sms,
    ("dotdigital-audiences", "syncAudience"): plan_sync_audience,
}
