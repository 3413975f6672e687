"""Contacts v3: ``GET|PATCH|DELETE /contacts/v3/{identifier}/{value}``.

From Dotdigital's contacts service OpenAPI (``importContact``, ``getContact``, ``deleteContact``):

- PATCH imports one contact: an existing one is updated with just the fields sent, otherwise a
  contact is created; ``200`` updated / ``201`` created, both with the contact. ``merge-option``
  (``overwrite`` default, ``overwrite-if-not-empty``, ``overwrite-if-empty``) says how the data
  is merged into an existing contact (the emulator applies it to data fields and identifiers).
  ``409 contacts:idAlreadyExists`` when an identifier in the body belongs to another contact.
- GET answers the contact or ``404 contacts:contactNotFound`` with a ``details`` entry.
- DELETE answers ``{"contactId": N}`` (the whole contact is deleted) or 404.
- ``400 contacts:invalidId`` ("The id value 'x' is invalid for the identifier 'email'") for a
  value that is not of the identifier's type.
- Email channel: ``emailType`` ``Html|PlainText``, ``optInType`` ``Unknown|Single|Double|
  VerifiedDouble``, status update ``noSubscription|subscribed|unsubscribed|suppressed``; with
  ``resubscribeOptions`` (``resubscribeWithNoChallenge`` default true, ``preferredLocale``,
  ``redirectUrlAfterChallenge``). Resubscribing an unsubscribed contact with a challenge leaves it
  ``pendingOptIn`` and sends a confirmation email (recorded in ``/_emulator/challenges``); without
  the challenge it is subscribed at once. Statuses Dotdigital sets itself (bounces, complaints,
  suppressions) are not changed by a resubscribe.
- SMS channel: status update as for email; answered with a ``countryCode`` from the number.

Error codes other than ``invalidId``, ``contactNotFound`` and ``idAlreadyExists`` (the spec's
examples) are the emulator's own names in the same ``contacts:...`` style.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from starlette.responses import Response

from sgbridge.emulators.dotdigital.pipeline import Call, Endpoint, V3Error, json_response
from sgbridge.emulators.dotdigital.state import Contact, DotdigitalState, iso

IDENTIFIERS = ("email", "mobileNumber", "contactId")
MERGE_OPTIONS = ("overwrite", "overwrite-if-not-empty", "overwrite-if-empty")
EMAIL_TYPES = {"html": "Html", "plaintext": "PlainText"}
OPT_IN_TYPES = {"unknown": "Unknown", "single": "Single", "double": "Double", "verifieddouble": "VerifiedDouble"}
STATUS_UPDATES = ("noSubscription", "subscribed", "unsubscribed", "suppressed")
LOCALES = ("cs-CS", "da-DA", "de-DE", "el-EL", "en-EN", "es-ES", "es", "fi-FI", "fr-FR", "hu-HU", "it-IT",
           "nl-NL", "nb-NO", "pl-PL", "pt-PT", "ru-RU", "se-SE", "sk-SK", "tr-TR", "zh-CN")
_EMAIL = re.compile(r"[^@\s<>]+@[^@\s.<>]+(\.[^@\s.<>]+)+")
_MOBILE = re.compile(r"\+?[1-9]\d{6,14}")
# Calling code -> ISO 3166-1 alpha-2 for the sms channel's countryCode (the common ones; longest first).
COUNTRY_CODES = {"44": "GB", "1": "US", "61": "AU", "64": "NZ", "353": "IE", "49": "DE", "33": "FR", "34": "ES",
                 "39": "IT", "31": "NL", "32": "BE", "46": "SE", "47": "NO", "45": "DK", "48": "PL", "65": "SG",
                 "852": "HK", "91": "IN", "81": "JP", "27": "ZA"}


def is_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and _EMAIL.fullmatch(value) is not None


def clean_mobile(value: Any) -> str | None:
    """Digits of an E.164 number ("+447..." or "447..."), or None when it is not one."""
    if not isinstance(value, str) or _MOBILE.fullmatch(value) is None:
        return None
    return value.lstrip("+")


def country_code(mobile: str) -> str:
    for length in (3, 2, 1):
        if mobile[:length] in COUNTRY_CODES:
            return COUNTRY_CODES[mobile[:length]]
    return "GB"


def invalid_id(value: str, identifier: str) -> V3Error:
    return V3Error(400, "contacts:invalidId", f"The id value '{value}' is invalid for the identifier '{identifier}'")


def _check_identifier(identifier: str, value: str) -> None:
    if identifier not in IDENTIFIERS:
        raise V3Error(400, "contacts:invalidIdentifier", f"The identifier '{identifier}' is not valid",
                      [{"item": identifier, "description": "Must be one of contactId, email, mobileNumber"}])
    ok = (is_email(value) if identifier == "email" else clean_mobile(value) is not None
          if identifier == "mobileNumber" else value.isdigit())
    if not ok:
        raise invalid_id(value, identifier)


def contact_json(state: DotdigitalState, contact: Contact) -> dict[str, Any]:
    identifiers: dict[str, Any] = {}
    if contact.email:
        identifiers["email"] = contact.email
    if contact.mobile:
        identifiers["mobileNumber"] = contact.mobile
    channels: dict[str, Any] = {}
    if contact.email_status is not None:
        channels["email"] = {"emailType": contact.email_type, "optInType": contact.opt_in_type,
                             "status": contact.email_status}
    if contact.sms_status is not None and contact.mobile:
        channels["sms"] = {"countryCode": country_code(contact.mobile), "status": contact.sms_status}
    statuses = [s for s in (contact.email_status, contact.sms_status) if s is not None]
    overall = "subscribed" if "subscribed" in statuses else statuses[0] if statuses else "noSubscription"
    fields = {f.name: contact.data_fields.get(f.name.upper(), f.default) for f in state.data_fields.values()}
    lists = [{"id": book_id, "name": state.address_books[book_id].name, "status": status}
             for book_id, status in sorted(contact.lists.items()) if book_id in state.address_books]
    return {"contactId": contact.contact_id, "status": overall, "created": iso(contact.created),
            "updated": iso(contact.updated), "identifiers": identifiers, "dataFields": fields,
            "channelProperties": channels, "lists": lists}


def coerce_data_field(kind: str, value: Any) -> tuple[bool, Any]:
    """(valid, stored value) for a data field of Dotdigital's type ``kind``; None clears it."""
    if value is None:
        return True, None
    if kind == "String":
        return isinstance(value, str), value
    if kind == "Numeric":
        if isinstance(value, bool):
            return False, value
        if isinstance(value, int | float):
            return True, value
        try:
            return True, float(value) if "." in str(value) else int(str(value))
        except ValueError:
            return False, value
    if kind == "Boolean":
        if isinstance(value, bool):
            return True, value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return True, value.lower() == "true"
        return False, value
    if kind == "Date":
        if not isinstance(value, str):
            return False, value
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False, value
        return True, value
    return True, value


def _validate_data_fields(state: DotdigitalState, fields: Any) -> dict[str, Any]:
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise V3Error(400, "contacts:invalidDataFields", "dataFields must be an object")
    out: dict[str, Any] = {}
    errors = []
    for name, value in fields.items():
        definition = state.data_fields.get(str(name).upper())
        if definition is None:
            errors.append({"item": str(name), "description": f"The data field '{name}' does not exist"})
            continue
        ok, stored = coerce_data_field(definition.type, value)
        if not ok:
            errors.append({"item": str(name),
                           "description": f"The value '{value}' is not valid for the {definition.type} data field"})
        out[definition.name.upper()] = stored
    if errors:
        raise V3Error(400, "contacts:invalidDataFields", "One or more data fields are invalid", errors)
    return out


def _merge(option: str, current: Any, new: Any) -> Any:
    empty_new = new is None or new == ""
    if option == "overwrite-if-not-empty":
        return current if empty_new else new
    if option == "overwrite-if-empty":
        return new if current in (None, "") else current
    return new


def _enum(value: Any, allowed: dict[str, str], item: str) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise V3Error(400, "contacts:invalidChannelProperties", f"The value '{value}' is not valid for {item}",
                      [{"item": item, "description": f"Must be one of {', '.join(allowed.values())}"}])
    return allowed[value.lower()]


def _status(value: Any, item: str) -> str:
    if value not in STATUS_UPDATES:
        raise V3Error(400, "contacts:invalidChannelProperties", f"The value '{value}' is not valid for {item}",
                      [{"item": item, "description": f"Must be one of {', '.join(STATUS_UPDATES)}"}])
    return str(value)


def _existing(call: Call) -> Contact:
    """The contact the path names, or Dotdigital's 404."""
    identifier, value = call.param("identifier"), call.param("value")
    _check_identifier(identifier, value)
    contact = call.state.find(identifier, value)
    if contact is None:
        raise V3Error(404, "contacts:contactNotFound", "The following contacts could not be found",
                      [{"item": value, "description": f"Not found using the identifier '{identifier}'"}])
    return contact


def get_contact(call: Call) -> Response:
    return json_response(contact_json(call.state, _existing(call)))


def delete_contact(call: Call) -> Response:
    contact = _existing(call)
    call.state.delete_contact(contact)
    return json_response({"contactId": contact.contact_id})


def patch_contact(call: Call) -> Response:
    state = call.state
    identifier, value = call.param("identifier"), call.param("value")
    option = call.request.query_params.get("merge-option", "overwrite")
    if option not in MERGE_OPTIONS:
        raise V3Error(400, "validation:invalidQuery", f"The value '{option}' is not valid for merge-option",
                      [{"item": "merge-option", "description": f"Must be one of {', '.join(MERGE_OPTIONS)}"}])
    _check_identifier(identifier, value)
    if identifier == "contactId":
        raise V3Error(400, "contacts:invalidIdentifier", "A contact can not be imported by contactId")
    body = call.body if call.body is not None else {}
    if not isinstance(body, dict):
        raise V3Error(400, "validation:invalidBody", "The request body must be a JSON object")
    identifiers = body.get("identifiers") or {}
    if not isinstance(identifiers, dict):
        raise V3Error(400, "contacts:invalidIdentifiers", "identifiers must be an object")
    email = identifiers.get("email", value if identifier == "email" else None)
    mobile_raw = identifiers.get("mobileNumber", value if identifier == "mobileNumber" else None)
    if email is not None and not is_email(email):
        raise invalid_id(str(email), "email")
    mobile = clean_mobile(mobile_raw) if mobile_raw is not None else None
    if mobile_raw is not None and mobile is None:
        raise invalid_id(str(mobile_raw), "mobileNumber")
    contact = state.find(identifier, value)
    for kind, ident in (("email", email), ("mobileNumber", mobile)):
        other = state.find(kind, ident) if ident else None
        if other is not None and other is not contact:
            raise V3Error(409, "contacts:idAlreadyExists",
                          f"The id value '{ident} for the identifier '{kind}' already exists. "
                          "All identifiers must be unique!")
    data_fields = _validate_data_fields(state, body.get("dataFields"))
    lists = body.get("lists")
    if lists is not None:
        if not isinstance(lists, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in lists):
            raise V3Error(400, "contacts:invalidLists", "lists must be an array of list ids")
        unknown = [i for i in lists if i not in state.address_books]
        if unknown:
            raise V3Error(400, "contacts:invalidLists", "One or more lists could not be found",
                          [{"item": str(i), "description": "List not found"} for i in unknown])
    channels = body.get("channelProperties") or {}
    if not isinstance(channels, dict):
        raise V3Error(400, "contacts:invalidChannelProperties", "channelProperties must be an object")
    email_props = channels.get("email") or {}
    sms_props = channels.get("sms") or {}
    email_type = _enum(email_props["emailType"], EMAIL_TYPES, "emailType") if "emailType" in email_props else None
    opt_in = _enum(email_props["optInType"], OPT_IN_TYPES, "optInType") if "optInType" in email_props else None
    email_status = _status(email_props["status"], "email.status") if "status" in email_props else None
    sms_status = _status(sms_props["status"], "sms.status") if "status" in sms_props else None
    resubscribe = email_props.get("resubscribeOptions") or {}
    if not isinstance(resubscribe, dict):
        raise V3Error(400, "contacts:invalidChannelProperties", "resubscribeOptions must be an object")
    locale = resubscribe.get("preferredLocale")
    if locale is not None and locale not in LOCALES:
        raise V3Error(400, "contacts:invalidChannelProperties", f"The value '{locale}' is not valid for "
                      "preferredLocale")

    created = contact is None
    if contact is None:
        contact = state.new_contact()
    if email and (created or _merge(option, contact.email, email) == email):
        state.set_email(contact, email)
    if mobile and (created or _merge(option, contact.mobile, mobile) == mobile):
        state.set_mobile(contact, mobile)
    if contact.email:
        if email_type:
            contact.email_type = email_type
        if opt_in:
            contact.opt_in_type = opt_in
        if contact.email_status is None:
            contact.email_status = email_status or state.default_email_status
        elif email_status is not None:
            _update_email_status(state, contact, email_status, resubscribe)
    if contact.mobile:
        if contact.sms_status is None:
            contact.sms_status = sms_status or state.default_email_status
        elif sms_status is not None and contact.sms_status in ("subscribed", "unsubscribed", "noSubscription"):
            contact.sms_status = sms_status
    for name, new in data_fields.items():
        merged = _merge(option, contact.data_fields.get(name), new)
        if merged is None:
            contact.data_fields.pop(name, None)
        else:
            contact.data_fields[name] = merged
    for book_id in lists or []:
        contact.lists[book_id] = "subscribed"
    contact.updated = state.now()
    return json_response(contact_json(state, contact), 201 if created else 200)


# Statuses that only Dotdigital sets (bounces, complaints, suppressions): a client cannot resubscribe them.
_LOCKED = frozenset({"softBounced", "hardBounced", "ispComplained", "directComplaint", "spamTrap", "blockedlocalpart",
                     "sharedsuppression", "sharedDomainSuppression", "suppressed", "purchased", "knownComplainer",
                     "knownLitigator", "domainSuppressed", "deleted", "binned"})


def _update_email_status(state: DotdigitalState, contact: Contact, status: str, resubscribe: dict[str, Any]) -> None:
    current = contact.email_status
    if status == "subscribed" and current in _LOCKED:
        return
    challenge = resubscribe.get("resubscribeWithNoChallenge", True) is False
    if status == "subscribed" and current in ("unsubscribed", "pendingOptIn") and challenge:
        contact.email_status = "pendingOptIn"
        state.challenges.append({"contactId": contact.contact_id, "email": contact.email, "at": iso(state.now()),
                                 "preferredLocale": resubscribe.get("preferredLocale"),
                                 "redirectUrlAfterChallenge": resubscribe.get("redirectUrlAfterChallenge")})
        return
    contact.email_status = status


ENDPOINTS = [
    Endpoint("GET", "/contacts/v3/{identifier}/{value:path}", get_contact, "high"),
    Endpoint("PATCH", "/contacts/v3/{identifier}/{value:path}", patch_contact, "medium"),
    Endpoint("DELETE", "/contacts/v3/{identifier}/{value:path}", delete_contact, "medium"),
]
