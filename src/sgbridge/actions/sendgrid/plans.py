"""Payload → operations for each SendGrid action, following Segment's destination code.

Ported from segmentio/action-destinations (``sendgrid/sendgrid-properties.ts``,
``sendgrid/sendEmail/utils.ts``, ``sendgrid-audiences/syncAudience/utils.ts``) so that the same
payload gives the same request bodies and the same error messages. Where sgbridge differs on
purpose it says so here and in docs/actions.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from sgbridge.actions.engage import engage_membership
from sgbridge.actions.operations import (
    IDENTIFIER_KINDS,
    Invalid,
    ListRemoval,
    MailSend,
    Operation,
    Skip,
    SuppressionChange,
    Upsert,
)

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
RESERVED_HEADERS = ("x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type",
                    "Content-Transfer-Encoding", "To", "From", "Subject", "Reply-To", "CC", "BCC")
MAX_CATEGORY_LENGTH = 255
MIN_IP_POOL_NAME_LENGTH, MAX_IP_POOL_NAME_LENGTH = 2, 64
MAX_SCHEDULE_SECONDS = 72 * 3600
# custom_args sgbridge adds to every email, so the email's own events can be tied back to the user
# and to the Segment event that caused it (see docs/actions.md).
USER_ID_ARG = "segment_user_id"  # the Segment source makes it the events' userId (sources.*.user_id_arg)
ANONYMOUS_ID_ARG = "segment_anonymous_id"  # a property of the events, never their userId
MESSAGE_ID_ARG = "segment_message_id"


# -- Upsert Contact (sendgrid.updateUserProfile) ----------------------------------------------

def _js_json_value(value: Any) -> Any:
    """``tranformValueToAcceptedDataType``: booleans, objects and arrays become JSON text."""
    if isinstance(value, bool | dict | list) or value is None:
        return orjson.dumps(value).decode()
    return value


def plan_upsert_contact(payload: dict[str, Any]) -> list[Operation]:
    if not any(payload.get(k) for k in ("primary_email", "phone_number_id", "external_id", "anonymous_id")):
        raise Invalid("Contact must have at least one identifying field included (email, phone_number_id, "
                      "external_id, anonymous_id).", "Invalid value")
    skip = {"state", "primary_email", "enable_batching", "customFields", "list_ids"}
    # sgbridge leaves nulls out (Segment sends them; SendGrid's schema wants strings): an absent
    # field is left unchanged by SendGrid, which is what a missing trait means.
    row = {k: v for k, v in payload.items() if k not in skip and v is not None}
    if payload.get("state") is not None:
        row["state_province_region"] = payload["state"]
    if payload.get("primary_email") is not None:
        row["email"] = payload["primary_email"]
    row["custom_fields"] = {k: _js_json_value(v) for k, v in (payload.get("customFields") or {}).items()}
    return [Upsert(row, tuple(payload.get("list_ids") or ()))]


# -- Add to / remove from list, suppressions (sgbridge) ------------------------------------------

def _contact_identifiers(payload: dict[str, Any]) -> dict[str, str]:
    named = {"email": payload.get("primary_email"), "phone_number_id": payload.get("phone_number_id"),
             "external_id": payload.get("external_id"), "anonymous_id": payload.get("anonymous_id")}
    found = {k: str(v) for k, v in named.items() if v not in (None, "")}
    if not found:
        raise Invalid("At least one identifier from Email Address, Phone Number ID, Anonymous ID or External ID "
                      "is required.")
    return found


def plan_add_to_list(payload: dict[str, Any]) -> list[Operation]:
    return [Upsert(_contact_identifiers(payload), (payload["list_id"],))]


def plan_remove_from_list(payload: dict[str, Any]) -> list[Operation]:
    return [ListRemoval(payload["list_id"], _contact_identifiers(payload))]


def plan_suppression(payload: dict[str, Any], add: bool) -> list[Operation]:
    return [SuppressionChange(payload["email"], payload.get("group_id"), add)]


# -- Send Email with Dynamic Template (sendgrid.sendEmail) -------------------------------------

def parse_int_from_string(value: Any) -> int | None:
    if not value:
        return None
    text = str(value)
    match = re.match(r"^(\d+)", text) or re.search(r"\[(\d+)\]", text)
    return int(match[1]) if match else None


def parse_template_id(value: str) -> str | None:
    if value.startswith("d-"):
        return value.split(" ")[0]
    match = re.search(r"\[(.*?)\]", value)
    return match[1] if match else None


def parse_js_date(value: Any) -> datetime | None:
    """``new Date(value)`` for the forms Segment's mappings produce (ISO 8601, epoch ms)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def to_unix_ts(value: Any) -> int | None:
    parsed = parse_js_date(value) if value else None
    return int(parsed.timestamp() // 1) if parsed else None


def _validate_email_payload(payload: dict[str, Any], now: float) -> None:
    if payload.get("group_id") and parse_int_from_string(payload["group_id"]) is None:
        raise Invalid("Group ID value must be a numberic (integer) string")
    if payload.get("domain") and not str(payload["from"]["email"]).endswith(payload["domain"]):
        raise Invalid("From email must be from the selected domain")
    template_id = parse_template_id(payload["template_id"])
    if template_id is None or not template_id.startswith("d-"):
        raise Invalid('Template must refer to a Dynamic Template. Dynamic Template IDs start with "d-"')
    if any(key in RESERVED_HEADERS for key in payload.get("headers") or {}):
        raise Invalid(f"Headers cannot contain any of the following reserved headers: {', '.join(RESERVED_HEADERS)}")
    for category in payload.get("categories") or []:
        if len(category) > MAX_CATEGORY_LENGTH:
            raise Invalid(f"Category with name {category} exceeds the max length of {MAX_CATEGORY_LENGTH} characters")
    for kind in ("cc", "bcc"):
        if kind in payload:
            kept = [r for r in payload[kind] or [] if isinstance(r, dict) and str(r.get("email") or "").strip()]
            if kept:
                payload[kind] = kept
            else:
                del payload[kind]
    if payload.get("send_at"):
        at = parse_js_date(payload["send_at"])
        if at is None or at.timestamp() < now or at.timestamp() > now + MAX_SCHEDULE_SECONDS:
            raise Invalid("send_at should be less than 72 hours from now")
    pool = payload.get("ip_pool_name")
    if pool and (len(pool) >= MAX_IP_POOL_NAME_LENGTH or len(pool) <= MIN_IP_POOL_NAME_LENGTH):
        raise Invalid(f"IP Pool Name should at least {MIN_IP_POOL_NAME_LENGTH} characters and at most "
                      f"{MAX_IP_POOL_NAME_LENGTH} characters in length")


def _recipient(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (("email", entry.get("email")), ("name", entry.get("name"))) if v is not None}


def _js_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return "[object Object]" if isinstance(value, dict) else ",".join(_js_str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "null" if value is None else str(value)


def mail_body(payload: dict[str, Any], now: float) -> dict[str, Any]:
    """The ``/v3/mail/send`` body Segment's ``send`` builds (``undefined`` keys left out)."""
    _validate_email_payload(payload, now)
    personalization: dict[str, Any] = {"to": [_recipient(payload["to"])]}
    for kind in ("cc", "bcc"):
        if payload.get(kind) is not None:
            personalization[kind] = [_recipient(r) for r in payload[kind] if r.get("email") is not None]
    personalization["headers"] = {k: _js_str(v) for k, v in (payload.get("headers") or {}).items()}
    if payload.get("dynamic_template_data") is not None:
        personalization["dynamic_template_data"] = payload["dynamic_template_data"]
    if payload.get("custom_args"):
        personalization["custom_args"] = {k: _js_str(v) for k, v in payload["custom_args"].items()}
    send_at = to_unix_ts(payload.get("send_at"))
    if send_at is not None:
        personalization["send_at"] = send_at
    sender = payload["from"]
    reply = payload.get("reply_to") or {}
    body: dict[str, Any] = {
        "personalizations": [personalization],
        "from": _recipient(sender),
        "reply_to": {k: v for k, v in (("email", reply.get("email") or sender["email"]),
                                       ("name", reply.get("name") or sender.get("name"))) if v is not None},
        "template_id": parse_template_id(payload["template_id"]),
    }
    if payload.get("categories") is not None:
        body["categories"] = payload["categories"]
    group_id = parse_int_from_string(payload.get("group_id"))
    if group_id is not None:
        body["asm"] = {"group_id": group_id}
    if payload.get("ip_pool_name") is not None:
        body["ip_pool_name"] = payload["ip_pool_name"]
    return body


def plan_send_email(payload: dict[str, Any], event: dict[str, Any], now: float, tag: bool = True) -> list[Operation]:
    body = mail_body(payload, now)
    message_id = str(event.get("messageId") or "")
    if tag:
        # sgbridge: tie the email's events back to the Segment user and to this Segment event.
        args = body["personalizations"][0].setdefault("custom_args", {})
        # Only a userId becomes the events' userId: an anonymousId there made every email to an
        # anonymous visitor come back as an identified user named by that id.
        for arg, field in ((USER_ID_ARG, "userId"), (ANONYMOUS_ID_ARG, "anonymousId")):
            if event.get(field) not in (None, ""):
                args.setdefault(arg, str(event[field]))
        if message_id:
            args.setdefault(MESSAGE_ID_ARG, message_id)
    return [MailSend(body, message_id)]


# -- Sync Audience (sendgrid-audiences.syncAudience) -------------------------------------------

_US_DATE = re.compile(r"^(\d{1,2})[-/](\d{1,2})[-/](\d{4})$")


def to_date_format(value: str) -> str | None:
    """``toDateFormat``: MM/DD/YYYY of what JS ``new Date`` makes of the value (UTC), else None."""
    text = value.strip()
    us = _US_DATE.match(text)
    if us:
        month, day, year = int(us[1]), int(us[2]), int(us[3])
        try:
            datetime(year, month, day)
        except ValueError:
            return None
        return f"{month:02d}/{day:02d}/{year}"
    parsed = parse_js_date(text)
    if parsed is None or not re.match(r"^\d{4}-\d{2}-\d{2}", text):
        return None
    parsed = parsed.astimezone(UTC)
    return f"{parsed.month:02d}/{parsed.day:02d}/{parsed.year}"


def _audience_checks(payload: dict[str, Any]) -> None:
    ids = payload.get("identifiers") or {}
    if ids.get("phone_number_id") and not E164.match(ids["phone_number_id"]):
        raise Invalid(f"phone_number_id '{ids['phone_number_id']}' is not valid")
    attributes = payload.get("user_attributes") or {}
    if attributes.get("phone_number") and not E164.match(attributes["phone_number"]):
        raise Invalid(f"user_attributes.phone_number '{attributes['phone_number']}' is not valid")
    for key, value in (payload.get("custom_text_fields") or {}).items():
        if not isinstance(value, str):
            raise Invalid(f"custom_text_fields {key} value {_js_str(value)} is not a string")
    for key, value in (payload.get("custom_number_fields") or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"custom_number_fields {key} value {_js_str(value)} is not a number")
    dates = payload.get("custom_date_fields") or {}
    for key, value in dates.items():
        formatted = to_date_format(value) if isinstance(value, str) else None
        if formatted is None:  # Segment's message says "custom_number_fields" here too
            raise Invalid(f"custom_number_fields {key} value {_js_str(value)} is not a valid date")
        dates[key] = formatted
    if not any(ids.get(k) for k in ("email", "phone_number_id", "external_id", "anonymous_id")):
        raise Invalid("At least one identifier from Email Address, Phone Number ID, Anonymous ID or External ID "
                      "is required.")


def audience_row(payload: dict[str, Any]) -> dict[str, Any]:
    ids = payload.get("identifiers") or {}
    row = {k: ids[k] for k in ("email", "phone_number_id", "external_id", "anonymous_id") if ids.get(k) is not None}
    row.update(payload.get("user_attributes") or {})
    custom = {**(payload.get("custom_text_fields") or {}), **(payload.get("custom_number_fields") or {}),
              **(payload.get("custom_date_fields") or {})}
    if custom:
        row["custom_fields"] = custom
    return row


def membership(payload: dict[str, Any], event: dict[str, Any]) -> bool:
    """Entered (True) or exited (False), by Engage's rule, else by the mapped trait.

    Segment's own action treats anything but ``true`` as "remove", so an ordinary identify
    that matches the default trigger takes the contact off the list; sgbridge drops such events.
    """
    engage = engage_membership(event)
    if engage is not None:
        return engage
    value = (payload.get("traits_or_props") or {}).get(payload.get("segment_audience_key"))
    if isinstance(value, bool):
        return value
    raise Skip(f"not an audience membership change: no boolean at traits/properties "
               f"{payload.get('segment_audience_key')!r}")


def says_membership(mapped: Any, event: dict[str, Any]) -> bool:
    """Whether an event (and its raw mapped fields) states an audience entry or exit at all."""
    if engage_membership(event) is not None:
        return True
    if not isinstance(mapped, dict):
        return False
    holder = mapped.get("traits_or_props")
    key = mapped.get("segment_audience_key")
    return isinstance(holder, dict) and isinstance(key, str) and isinstance(holder.get(key), bool)


def plan_sync_audience(payload: dict[str, Any], event: dict[str, Any]) -> list[Operation]:
    list_id = payload.get("external_audience_id")
    if list_id is None:
        raise Invalid("external_audience_id value is missing from payload")
    _audience_checks(payload)
    row = audience_row(payload)
    if membership(payload, event):
        return [Upsert(row, (str(list_id),), strict_custom_fields=False, send_empty_lists=True)]
    identifiers: dict[str, str] = {k: str(row[k]) for k in IDENTIFIER_KINDS if k in row}
    # As Segment does: upsert first (so the contact exists), then find it and take it off the list.
    return [Upsert(row, (), strict_custom_fields=False, send_empty_lists=True),
            ListRemoval(str(list_id), identifiers)]


Planner = Callable[[dict[str, Any], dict[str, Any], float], list[Operation]]

PLANNERS: dict[tuple[str, str], Planner] = {
    ("sendgrid", "updateUserProfile"): lambda p, e, now: plan_upsert_contact(p),
    ("sendgrid", "sendEmail"): lambda p, e, now: plan_send_email(p, e, now),
    ("sendgrid", "addToList"): lambda p, e, now: plan_add_to_list(p),
    ("sendgrid", "removeFromList"): lambda p, e, now: plan_remove_from_list(p),
    ("sendgrid", "addSuppression"): lambda p, e, now: plan_suppression(p, True),
    ("sendgrid", "removeSuppression"): lambda p, e, now: plan_suppression(p, False),
    ("sendgrid-audiences", "syncAudience"): lambda p, e, now: plan_sync_audience(p, e),
}
