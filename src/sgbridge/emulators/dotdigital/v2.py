"""The v2 endpoints Segment's Dotdigital destinations call, and CPaaS messages.

Shapes from Dotdigital's v2 OpenAPI (``ApiDataField``, ``ApiAddressBook``, ``ApiProgram``,
``ApiProgramEnrolment``, ``ApiCampaignSend``, ``ApiTransactionalEmail``, ``ApiSms``) and the
answers Segment's code reads (Segment's own test cases of its Dotdigital destinations).
v2 is ASP.NET Web API: property names are matched case-insensitively (Segment sends
``campaignID``/``contactIDs`` and ``ToAddresses``), and errors are ``{"message": "... ERROR_X"}``.
Status codes: data fields 200/201, lists 200/201, list member DELETE 204, enrolment 201 (then
``Processing`` -> ``Finished``), campaign sends 202 (``Scheduled``/``Sending`` -> ``Sent``),
transactional email 200, SMS send-to 204, CPaaS message 201 ``{"messageId"}``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from starlette.responses import Response

from sgbridge.emulators.dotdigital.contacts import clean_mobile, is_email
from sgbridge.emulators.dotdigital.pipeline import Call, Endpoint, V2Error, V3Error, json_response
from sgbridge.emulators.dotdigital.state import (
    DATA_FIELD_TYPES,
    CampaignSend,
    DataField,
    Enrolment,
    iso,
)

INVALID = "ERROR_PARAMETER_INVALID"
MAX_SELECT = 1000
MAX_RECIPIENTS = 100
CPAAS_CHANNELS = ("sms", "whatsapp", "rcs", "push", "fbMessenger", "chat")


def _ci(body: Any, name: str, default: Any = None) -> Any:
    """A v2 body property, matched case-insensitively as ASP.NET model binding does."""
    if not isinstance(body, dict):
        return default
    lowered = name.lower()
    for key, value in body.items():
        if key.lower() == lowered:
            return value
    return default


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise V2Error(400, f"{name} is not valid. {INVALID}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise V2Error(400, f"{name} is not valid. {INVALID}")


def _ints(value: Any, name: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise V2Error(400, f"{name} is not valid. {INVALID}")
    return [_int(v, name) for v in value]


def _paging(call: Call) -> tuple[int, int]:
    params = call.request.query_params
    try:
        select, skip = int(params.get("select", MAX_SELECT)), int(params.get("skip", 0))
    except ValueError:
        raise V2Error(400, f"select and skip must be numbers. {INVALID}") from None
    if not 1 <= select <= MAX_SELECT or skip < 0:
        raise V2Error(400, f"select must be between 1 and {MAX_SELECT}. {INVALID}")
    return select, skip


# -- account, data fields ---------------------------------------------------------------------


def account_info(call: Call) -> Response:
    endpoint = call.emulator.base_url()
    return json_response({"id": 100001, "properties": [
        {"name": "Name", "type": "String", "value": "sgbridge emulated account"},
        {"name": "ApiEndpoint", "type": "String", "value": endpoint},
        {"name": "MainEmail", "type": "String", "value": "owner@example.com"},
        {"name": "ApiCallsRemaining", "type": "Int32", "value": "2000"},
    ]})


def list_data_fields(call: Call) -> Response:
    return json_response([f.as_json() for f in call.state.data_fields.values()])


def create_data_field(call: Call) -> Response:
    name, kind = _ci(call.body, "name"), _ci(call.body, "type", "String")
    visibility, default = _ci(call.body, "visibility", "Private"), _ci(call.body, "defaultValue")
    if not isinstance(name, str) or not name.strip() or len(name) > 20:
        raise V2Error(400, f"Name is not valid. {INVALID}")
    if kind not in DATA_FIELD_TYPES or visibility not in ("Private", "Public"):
        raise V2Error(400, f"Type or visibility is not valid. {INVALID}")
    if name.upper() in call.state.data_fields:
        raise V2Error(400, "Field already exists. ERROR_NON_UNIQUE_DATAFIELD")
    field = DataField(name.upper(), kind, visibility, default)
    call.state.data_fields[field.name] = field
    return json_response(field.as_json(), 201)


# -- lists ------------------------------------------------------------------------------------


def _book_json(call: Call, book_id: int) -> dict[str, Any]:
    book = call.state.address_books[book_id]
    return {"id": book.id, "name": book.name, "visibility": book.visibility,
            "contacts": len(call.state.members(book.id))}


def list_address_books(call: Call) -> Response:
    select, skip = _paging(call)
    ids = sorted(call.state.address_books)[skip: skip + select]
    return json_response([_book_json(call, i) for i in ids])


def create_address_book(call: Call) -> Response:
    name, visibility = _ci(call.body, "name"), _ci(call.body, "visibility", "Private")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise V2Error(400, f"Name is not valid. {INVALID}")
    if visibility not in ("Private", "Public"):
        raise V2Error(400, f"Visibility is not valid. {INVALID}")
    if any(b.name.lower() == name.lower() for b in call.state.address_books.values()):
        raise V2Error(400, "An address book with this name already exists. ERROR_ADDRESSBOOK_DUPLICATE")
    book = call.state.add_address_book(name, visibility)
    return json_response(_book_json(call, book.id), 201)


def _book_id(call: Call) -> int:
    raw = call.param("addressBookId")
    if not raw.isdigit() or int(raw) not in call.state.address_books:
        raise V2Error(404, "Error: ERROR_ADDRESSBOOK_NOT_FOUND")
    return int(raw)


def get_address_book(call: Call) -> Response:
    return json_response(_book_json(call, _book_id(call)))


def remove_from_address_book(call: Call) -> Response:
    book_id = _book_id(call)
    raw = call.param("contactId")
    contact = call.state.contacts.get(int(raw)) if raw.isdigit() else None
    if contact is None:
        raise V2Error(404, "Error: ERROR_CONTACT_NOT_FOUND")
    contact.lists.pop(book_id, None)
    contact.updated = call.state.now()
    return Response(status_code=204)


# -- programs and enrolments ------------------------------------------------------------------


def list_programs(call: Call) -> Response:
    select, skip = _paging(call)
    programs = [call.state.programs[i] for i in sorted(call.state.programs)][skip: skip + select]
    return json_response([{"id": p.id, "name": p.name, "status": p.status, "dateCreated": iso(p.created)}
                          for p in programs])


def get_program(call: Call) -> Response:
    raw = call.param("id")
    program = call.state.programs.get(int(raw)) if raw.isdigit() else None
    if program is None:
        raise V2Error(404, "Error: ERROR_PROGRAM_NOT_FOUND")
    return json_response({"id": program.id, "name": program.name, "status": program.status,
                          "dateCreated": iso(program.created)})


def _enrolment_json(enrolment: Enrolment) -> dict[str, Any]:
    return {"id": enrolment.id, "programId": enrolment.program_id, "status": enrolment.status,
            "dateCreated": iso(enrolment.created), "contacts": enrolment.contacts,
            "addressBooks": enrolment.address_books}


def create_enrolment(call: Call) -> Response:
    program_id = _int(_ci(call.body, "programId"), "ProgramId")
    contacts = _ints(_ci(call.body, "contacts"), "Contacts")
    books = _ints(_ci(call.body, "addressBooks"), "AddressBooks")
    program = call.state.programs.get(program_id)
    if program is None:
        raise V2Error(404, "Error: ERROR_PROGRAM_NOT_FOUND")
    if program.status != "Active":
        raise V2Error(400, "The program is not active. ERROR_PROGRAM_NOT_ACTIVE")
    if not contacts and not books:
        raise V2Error(400, f"Contacts or AddressBooks must be specified. {INVALID}")
    for book_id in books:
        if book_id not in call.state.address_books:
            raise V2Error(404, "Error: ERROR_ADDRESSBOOK_NOT_FOUND")
    enrolment = call.state.add_enrolment(program_id, contacts, books)
    return json_response(_enrolment_json(enrolment), 201)


def get_enrolment(call: Call) -> Response:
    enrolment = call.state.enrolments.get(call.param("enrolmentId"))
    if enrolment is None:
        raise V2Error(404, "Error: ERROR_ENROLMENT_NOT_FOUND")
    return json_response(_enrolment_json(enrolment))


def enrolment_faults(call: Call) -> Response:
    enrolment = call.state.enrolments.get(call.param("enrolmentId"))
    if enrolment is None:
        raise V2Error(404, "Error: ERROR_ENROLMENT_NOT_FOUND")
    return json_response(enrolment.faults if enrolment.status == "Finished" else [])


# -- campaigns and sends ----------------------------------------------------------------------


def _campaign_json(call: Call, campaign_id: int) -> dict[str, Any]:
    c = call.state.campaigns[campaign_id]
    return {"id": c.id, "name": c.name, "subject": c.subject, "fromName": c.from_name, "status": c.status}


def list_campaigns(call: Call) -> Response:
    select, skip = _paging(call)
    return json_response([_campaign_json(call, i) for i in sorted(call.state.campaigns)[skip: skip + select]])


def get_campaign(call: Call) -> Response:
    raw = call.param("id")
    if not raw.isdigit() or int(raw) not in call.state.campaigns:
        raise V2Error(404, "Error: ERROR_CAMPAIGN_NOT_FOUND")
    return json_response(_campaign_json(call, int(raw)))


def _send_json(send: CampaignSend) -> dict[str, Any]:
    out: dict[str, Any] = {"id": send.id, "campaignId": send.campaign_id, "addressBookIds": send.address_book_ids,
                           "contactIds": send.contact_ids, "status": send.status}
    if send.send_date is not None:
        out["sendDate"] = send.send_date
    return out


def _send(call: Call, optimised: bool) -> Response:
    campaign_id = _int(_ci(call.body, "campaignId"), "CampaignId")
    contacts = _ints(_ci(call.body, "contactIds"), "ContactIds")
    books = _ints(_ci(call.body, "addressBookIds"), "AddressBookIds")
    campaign = call.state.campaigns.get(campaign_id)
    if campaign is None:
        raise V2Error(404, "Error: ERROR_CAMPAIGN_NOT_FOUND")
    if campaign.status not in ("Unsent", "Sent", "Sending", "Triggered"):
        raise V2Error(400, "The campaign cannot be sent. ERROR_CAMPAIGN_SENDNOTPERMITTED")
    for book_id in books:
        if book_id not in call.state.address_books:
            raise V2Error(404, "Error: ERROR_ADDRESSBOOK_NOT_FOUND")
    send_date = None if optimised else _ci(call.body, "sendDate")
    send_at: float | None = None
    if send_date is not None:
        try:
            send_at = datetime.fromisoformat(str(send_date).replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise V2Error(400, f"SendDate is not valid. {INVALID}") from None
    send = call.state.add_send(campaign_id, contacts, books, send_at, send_date, optimised)
    return json_response(_send_json(send), 202)


def send_campaign(call: Call) -> Response:
    return _send(call, optimised=False)


def send_campaign_optimised(call: Call) -> Response:
    return _send(call, optimised=True)


def get_send(call: Call) -> Response:
    send = call.state.sends.get(call.param("sendId"))
    if send is None:
        raise V2Error(404, "Error: ERROR_CAMPAIGN_SEND_NOT_FOUND")
    return json_response(_send_json(send))


# -- transactional email and SMS --------------------------------------------------------------


def _address(value: str) -> str:
    """``Name <addr>`` -> ``addr`` (Segment's validation accepts both forms)."""
    value = value.strip()
    if value.endswith(">") and "<" in value:
        return value[value.rindex("<") + 1: -1].strip()
    return value


def send_email(call: Call) -> Response:
    body = call.body
    to, cc, bcc = (_ci(body, "toAddresses") or [], _ci(body, "ccAddresses") or [], _ci(body, "bccAddresses") or [])
    subject, sender = _ci(body, "subject"), _ci(body, "fromAddress")
    html, plain = _ci(body, "htmlContent"), _ci(body, "plainTextContent")
    for name, value in (("ToAddresses", to), ("CCAddresses", cc), ("BCCAddresses", bcc)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise V2Error(400, f"{name} is not valid. {INVALID}")
    if not to:
        raise V2Error(400, f"ToAddresses must contain at least one address. {INVALID}")
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise V2Error(400, f"No more than {MAX_RECIPIENTS} recipients are allowed. {INVALID}")
    for address in [*to, *cc, *bcc]:
        if not is_email(_address(address)):
            raise V2Error(400, f"Email is not a valid email address. {INVALID}")
    if not isinstance(subject, str) or not subject:
        raise V2Error(400, f"Subject is required. {INVALID}")
    if not isinstance(sender, str) or not is_email(_address(sender)):
        raise V2Error(400, f"FromAddress is not a valid email address. {INVALID}")
    allowed = call.emulator.from_addresses
    if allowed is not None and _address(sender).lower() not in allowed:
        raise V2Error(400, "The from address is not a verified custom from address. ERROR_INVALID_FROM_ADDRESS")
    if not (isinstance(html, str) and html) and not (isinstance(plain, str) and plain):
        raise V2Error(400, f"HtmlContent or PlainTextContent is required. {INVALID}")
    call.state.emails.append({"id": str(uuid.uuid4()), "at": iso(call.state.now()), "from": sender, "to": to,
                              "cc": cc, "bcc": bcc, "subject": subject, "html": html, "plain": plain})
    return Response(status_code=200, media_type="application/octet-stream")


def send_sms(call: Call) -> Response:
    number = call.param("telephoneNumber")
    message = _ci(call.body, "message")
    if clean_mobile(number) is None:
        raise V2Error(400, f"The telephone number is not valid. {INVALID}")
    if not isinstance(message, str) or not message:
        raise V2Error(400, f"Message is required. {INVALID}")
    call.state.sms.append({"id": str(uuid.uuid4()), "kind": "send-to", "at": iso(call.state.now()),
                           "to": clean_mobile(number), "message": message, "from": None,
                           "shortenLinks": None, "allowUnicode": None})
    return Response(status_code=204)


def cpaas_message(call: Call) -> Response:
    body = call.body if isinstance(call.body, dict) else None
    if body is None:
        raise V3Error(400, "validation:invalidBody", "The request body must be a JSON object")
    to: dict[str, Any] = body["to"] if isinstance(body.get("to"), dict) else {}
    number, text, rules = to.get("phoneNumber"), body.get("body"), body.get("rules")
    errors = []
    if clean_mobile(str(number) if number is not None else None) is None:
        errors.append({"item": "to.phoneNumber", "description": f"'{number}' is not a valid phone number"})
    if not isinstance(text, str) or not text:
        errors.append({"item": "body", "description": "You must specify a value"})
    if not isinstance(rules, list) or not rules or not all(r in CPAAS_CHANNELS for r in rules):
        errors.append({"item": "rules", "description": f"Must be a non-empty list of {', '.join(CPAAS_CHANNELS)}"})
    shorten = body.get("shortenLinks")
    if shorten is not None and shorten not in ("on", "off"):
        errors.append({"item": "shortenLinks", "description": "Must be on or off"})
    sms_options = (body.get("channelOptions") or {}).get("sms") or {}
    if not isinstance(sms_options, dict):
        errors.append({"item": "channelOptions.sms", "description": "Must be an object"})
        sms_options = {}
    sender = sms_options.get("from")
    if sender is not None and (not isinstance(sender, str) or not 1 <= len(sender) <= 15):
        errors.append({"item": "channelOptions.sms.from", "description": "Must be 1-15 characters"})
    if errors:
        raise V3Error(400, "validation:failed", "The message is invalid", errors)
    message_id = str(uuid.uuid4())
    call.state.sms.append({"id": message_id, "kind": "cpaas", "at": iso(call.state.now()),
                           "to": clean_mobile(str(number)), "message": text, "from": sender, "rules": rules,
                           "shortenLinks": shorten, "allowUnicode": sms_options.get("allowUnicode")})
    return json_response({"messageId": message_id}, 201)


ENDPOINTS = [
    Endpoint("GET", "/v2/account-info", account_info, "high"),
    Endpoint("GET", "/v2/data-fields", list_data_fields, "medium"),
    Endpoint("GET", "/v2/data-fields/", list_data_fields, "medium"),
    Endpoint("POST", "/v2/data-fields", create_data_field, "medium"),
    Endpoint("GET", "/v2/address-books", list_address_books, "medium"),
    Endpoint("POST", "/v2/address-books", create_address_book, "medium"),
    Endpoint("GET", "/v2/address-books/{addressBookId}", get_address_book, "high"),
    Endpoint("DELETE", "/v2/address-books/{addressBookId}/contacts/{contactId}", remove_from_address_book, "medium"),
    Endpoint("GET", "/v2/programs", list_programs, "medium"),
    Endpoint("POST", "/v2/programs/enrolments", create_enrolment, "enrolments"),
    Endpoint("GET", "/v2/programs/enrolments/{enrolmentId}/report-faults", enrolment_faults, "high"),
    Endpoint("GET", "/v2/programs/enrolments/{enrolmentId}", get_enrolment, "high"),
    Endpoint("GET", "/v2/programs/{id}", get_program, "high"),
    Endpoint("GET", "/v2/campaigns", list_campaigns, "medium"),
    Endpoint("POST", "/v2/campaigns/send", send_campaign, "unlimited"),
    Endpoint("POST", "/v2/campaigns/send-time-optimised", send_campaign_optimised, "unlimited"),
    Endpoint("GET", "/v2/campaigns/send/{sendId}", get_send, "high"),
    Endpoint("GET", "/v2/campaigns/{id}", get_campaign, "high"),
    Endpoint("POST", "/v2/email", send_email, "unlimited"),
    Endpoint("POST", "/v2/sms-messages/send-to/{telephoneNumber}", send_sms, "unlimited"),
    Endpoint("POST", "/cpaas/messages", cpaas_message, "unlimited"),
]
