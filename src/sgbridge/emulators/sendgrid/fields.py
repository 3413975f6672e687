"""Custom field definitions (tsg_mc_custom_fields_v3).

Contacts carry custom values keyed by field-definition id, so a bridge must resolve names to
ids at run time (Segment's SendGrid destination does, case-insensitively). The emulator gives
custom fields opaque ids like SendGrid's (``e1_T``, ``e2_N``, ``e3_D``: a sequence number and
the type initial) and the reserved fields of the spec example (``_rf0_T`` first_name ...).
Names follow ``[A-Za-z_][A-Za-z0-9_]*``, are unique case-insensitively (reserved names
included) and an account has at most 500 custom fields.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response

from sgbridge.emulators.sendgrid.contacts import MARKETING_READ, MARKETING_WRITE
from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.state import FieldDefinition
from sgbridge.emulators.sendgrid.util import bad_request, empty_response, json_response, not_found

MAX_CUSTOM_FIELDS = 500
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# (id, name, type, read_only) as listed by the spec's GET /v3/marketing/field_definitions example.
RESERVED_FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("_rf0_T", "first_name", "Text", False), ("_rf1_T", "last_name", "Text", False),
    ("_rf2_T", "email", "Text", False), ("_rf3_T", "alternate_emails", "Text", False),
    ("_rf4_T", "address_line_1", "Text", False), ("_rf5_T", "address_line_2", "Text", False),
    ("_rf6_T", "city", "Text", False), ("_rf7_T", "state_province_region", "Text", False),
    ("_rf8_T", "postal_code", "Text", False), ("_rf9_T", "country", "Text", False),
    ("_rf10_T", "phone_number", "Text", False), ("_rf11_T", "whatsapp", "Text", False),
    ("_rf12_T", "line", "Text", False), ("_rf13_T", "facebook", "Text", False),
    ("_rf14_T", "unique_name", "Text", False), ("_rf15_T", "email_domains", "Text", True),
    ("_rf16_D", "last_clicked", "Date", True), ("_rf17_D", "last_opened", "Date", True),
    ("_rf18_D", "last_emailed", "Date", True), ("_rf19_T", "singlesend_id", "Text", True),
    ("_rf20_T", "automation_id", "Text", True), ("_rf21_D", "created_at", "Date", True),
    ("_rf22_D", "updated_at", "Date", True), ("_rf23_T", "contact_id", "Text", True),
)
_RESERVED_NAMES = frozenset(name.lower() for _, name, _, _ in RESERVED_FIELDS) | {
    "phone_number_id", "external_id", "anonymous_id", "list_ids", "segment_ids",
}


def field_json(definition: FieldDefinition, base_url: str) -> dict[str, Any]:
    return {
        "id": definition.id,
        "name": definition.name,
        "field_type": definition.field_type,
        "_metadata": {"self": f"{base_url}/v3/marketing/field_definitions/{definition.id}"},
    }


def _check_name(call: Call, name: str, exclude: str | None = None) -> None:
    if not _NAME.fullmatch(name):
        raise bad_request("name may contain only letters, digits and underscores and may not start with a digit",
                          "name")
    taken = call.state.field_by_name(name)
    if name.lower() in _RESERVED_NAMES or (taken is not None and taken.id != exclude):
        raise bad_request(f"a field named '{name}' already exists", "name")


def all_fields(call: Call) -> Response:
    return json_response({
        "custom_fields": [field_json(f, call.base_url) for f in call.state.custom_fields.values()],
        "reserved_fields": [
            {"id": fid, "name": name, "field_type": kind, **({"read_only": True} if read_only else {})}
            for fid, name, kind, read_only in RESERVED_FIELDS
        ],
        "_metadata": {"self": f"{call.base_url}/v3/marketing/field_definitions"},
    })


def create_field(call: Call) -> Response:
    state = call.state
    name, field_type = call.body["name"], call.body["field_type"]
    _check_name(call, name)
    if len(state.custom_fields) >= MAX_CUSTOM_FIELDS:
        raise bad_request(f"an account can have at most {MAX_CUSTOM_FIELDS} custom fields", "name")
    definition = FieldDefinition(f"e{state.next_field_number}_{field_type[0]}", name, field_type)
    state.next_field_number += 1
    state.custom_fields[definition.id] = definition
    return json_response(field_json(definition, call.base_url), 200)  # the spec documents 200, not 201


def _get(call: Call) -> FieldDefinition:
    definition = call.state.custom_fields.get(call.params["custom_field_id"])
    if definition is None:
        raise not_found("custom field not found", "custom_field_id")
    return definition


def update_field(call: Call) -> Response:
    definition = _get(call)
    _check_name(call, call.body["name"], exclude=definition.id)
    definition.name = call.body["name"]
    return json_response(field_json(definition, call.base_url))


def delete_field(call: Call) -> Response:
    definition = _get(call)
    del call.state.custom_fields[definition.id]
    for contact in call.state.contacts.values():
        if contact.custom is not None and definition.id in contact.custom:
            del contact.custom[definition.id]
            contact.custom = contact.custom or None
    return empty_response(204)


ENDPOINTS = [
    Endpoint("GET", "/v3/marketing/field_definitions", all_fields, MARKETING_READ),
    Endpoint("POST", "/v3/marketing/field_definitions", create_field, MARKETING_WRITE),
    Endpoint("PATCH", "/v3/marketing/field_definitions/{custom_field_id}", update_field, MARKETING_WRITE),
    Endpoint("DELETE", "/v3/marketing/field_definitions/{custom_field_id}", delete_field, MARKETING_WRITE),
]
