"""Finding contacts: SGQL search, lookups by e-mail / identifier, batch fetch by id.

``POST /v3/marketing/contacts/search`` returns only the first 50 matches (plus the full
``contact_count``), as SendGrid does. The e-mail lookup also matches ``alternate_emails``,
answers 404 when nothing matched and 400 when any searched address is invalid
(tsg_mc_contacts_v3 ``ListContactByEmail`` description).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from sgbridge.emulators.sendgrid.contact_ops import RESERVED_TEXT_FIELDS, contact_json
from sgbridge.emulators.sendgrid.contacts import MARKETING_READ
from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.sgql import Getter, SGQLError, compile_query
from sgbridge.emulators.sendgrid.state import IDENTIFIERS, Contact, SendGridEmulatorState
from sgbridge.emulators.sendgrid.util import ApiError, FieldError, bad_request, is_valid_email, json_response

SEARCH_LIMIT = 50
LOOKUP_LIMIT = 100
NOT_FOUND = "contact not found"


def _getter(state: SendGridEmulatorState, contact: Contact) -> Getter:
    names = {fid: definition.name.lower() for fid, definition in state.custom_fields.items()}
    custom = {names[fid]: value for fid, value in (contact.custom or {}).items() if fid in names}

    def get(name: str) -> Any:
        if name in IDENTIFIERS or name in RESERVED_TEXT_FIELDS:
            return getattr(contact, name)
        if name == "list_ids":
            return list(contact.list_ids)
        if name == "contact_id":
            return contact.id
        if name == "alternate_emails":
            return list(contact.alternate_emails)
        return custom.get(name)

    return get


def search_contacts(call: Call) -> Response:
    state = call.state
    fields = frozenset({*IDENTIFIERS, *RESERVED_TEXT_FIELDS, "list_ids", "contact_id", "alternate_emails"})
    fields |= {f.name.lower() for f in state.custom_fields.values()}
    try:
        predicate = compile_query(call.body["query"], fields)
    except SGQLError as exc:
        raise bad_request(f"invalid query: {exc}", "query") from None
    matches = [c for c in state.contacts.values() if predicate(_getter(state, c))]
    return json_response({
        "result": [contact_json(state, c, call.base_url) for c in matches[:SEARCH_LIMIT]],
        "contact_count": len(matches),
        "_metadata": {"self": f"{call.base_url}/v3/marketing/contacts/search"},
    })


def _by_email(state: SendGridEmulatorState, email: str) -> Contact | None:
    contact = state.find_contact("email", email)
    if contact is not None:
        return contact
    return next((c for c in state.contacts.values() if email in c.alternate_emails), None)


def _lookup_response(call: Call, found: dict[str, Contact | None], field: str) -> Response:
    if not any(found.values()):
        raise ApiError(404, FieldError(field, "No contacts found"))
    result = {
        key: {"contact": contact_json(call.state, c, call.base_url)} if c is not None else {"error": NOT_FOUND}
        for key, c in found.items()
    }
    return json_response({"result": result})


def search_by_emails(call: Call) -> Response:
    emails = [e for e in call.body["emails"] if e != ""]  # "Empty strings are excluded from the search"
    if len(emails) > LOOKUP_LIMIT:
        raise bad_request(f"at most {LOOKUP_LIMIT} emails may be searched at once", "emails")
    invalid = [
        FieldError(f"emails.{i}", f"email '{e}' is not valid") for i, e in enumerate(emails) if not is_valid_email(e)
    ]
    if invalid:
        raise ApiError(400, invalid)
    return _lookup_response(call, {e.lower(): _by_email(call.state, e.lower()) for e in emails}, "emails")


def search_by_identifiers(call: Call) -> Response:
    kind = call.params["identifier_type"]
    values = [str(v) for v in call.body["identifiers"] if v != ""]
    if len(values) > LOOKUP_LIMIT:
        raise bad_request(f"at most {LOOKUP_LIMIT} identifiers may be searched at once", "identifiers")
    normalized = [v.lower() if kind == "email" else v for v in values]
    return _lookup_response(call, {v: call.state.find_contact(kind, v) for v in normalized}, "identifiers")


def batch_contacts(call: Call) -> Response:
    found = [c for cid in call.body["ids"] if (c := call.state.contacts.get(cid)) is not None]
    if not found:
        raise ApiError(404, FieldError("ids", "No contacts found"))
    return json_response({"result": [contact_json(call.state, c, call.base_url) for c in found]})


ENDPOINTS = [
    Endpoint("POST", "/v3/marketing/contacts/search", search_contacts, MARKETING_READ),
    Endpoint("POST", "/v3/marketing/contacts/search/emails", search_by_emails, MARKETING_READ),
    Endpoint("POST", "/v3/marketing/contacts/search/identifiers/{identifier_type}", search_by_identifiers,
             MARKETING_READ),
    Endpoint("POST", "/v3/marketing/contacts/batch", batch_contacts, MARKETING_READ),
]
