"""Marketing contacts: identity rules, the upsert/delete jobs and the contact JSON.

Rules (tsg_mc_contacts_v3 ``PUT /v3/marketing/contacts`` description, sendgrid-api.md §3.1):

* a contact is identified by any of ``email`` (stored lower-case), ``phone_number_id``,
  ``external_id``, ``anonymous_id``; each row needs at least one;
* "In order to update a contact, all of its existing identifiers must be present": a row that
  matches a contact but omits or changes one of its identifiers, or that matches two different
  contacts, is a per-row error of the job (reported through ``errors_url``), not a 4xx;
* omitted fields are left unchanged; ``list_ids`` only ever adds memberships;
* ``custom_fields`` are keyed by field-definition id and must already exist: unknown ids fail
  the whole request with ``invalid custom field ids supplied - a,b`` (the message quoted in
  sendgrid/sendgrid-nodejs#953); a value of the wrong type is a per-row job error.

Invalid e-mail addresses: SendGrid answers the PUT with a 4xx listing them (Segment's SendGrid
Audiences destination parses ``email '<address>' is not valid`` out of that 400 and retries
without them), so that is the default. ``reject_invalid_emails=False`` instead accepts the
request and reports those rows as errored rows of the job.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Any

from sgbridge.emulators.sendgrid.state import (
    IDENTIFIERS,
    RESERVED_TEXT_FIELDS,
    Contact,
    Job,
    SendGridEmulatorState,
)
from sgbridge.emulators.sendgrid.util import FieldError, is_valid_email, iso

__all__ = [
    "RESERVED_TEXT_FIELDS", "check_upsert", "contact_data", "contact_json", "run_delete", "run_list_removal",
    "run_upsert",
]
_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def invalid_email_message(value: Any) -> str:
    return f"email '{value}' is not valid"


def row_identifiers(row: dict[str, Any]) -> dict[str, str]:
    found = {kind: str(row[kind]).strip() for kind in IDENTIFIERS if isinstance(row.get(kind), str | int)}
    found = {kind: value for kind, value in found.items() if value}
    if "email" in found:
        found["email"] = found["email"].lower()
    return found


def row_emails(row: dict[str, Any]) -> list[tuple[str, Any]]:
    """(field, value) of every address in a row that must be a valid e-mail."""
    emails: list[tuple[str, Any]] = []
    if row.get("email") not in (None, ""):
        emails.append(("email", row["email"]))
    alternates = row.get("alternate_emails")
    if isinstance(alternates, list):
        emails += [(f"alternate_emails.{i}", v) for i, v in enumerate(alternates)]
    return emails


def check_upsert(state: SendGridEmulatorState, body: dict[str, Any], reject_invalid_emails: bool) -> list[FieldError]:
    """The request-level (synchronous 400) problems of a contacts PUT."""
    errors: list[FieldError] = []
    unknown_fields: list[str] = []
    for i, row in enumerate(body["contacts"]):
        if not isinstance(row, dict):
            continue  # already reported by the schema
        if not row_identifiers(row):
            errors.append(FieldError(f"contacts.{i}", "at least one identifier is required: email, "
                                     "phone_number_id, external_id or anonymous_id"))
        if reject_invalid_emails:
            errors += [FieldError(f"contacts.{i}.{name}", invalid_email_message(value))
                       for name, value in row_emails(row) if not is_valid_email(value)]
        for field_id in row.get("custom_fields") or {}:
            if field_id not in state.custom_fields and field_id not in unknown_fields:
                unknown_fields.append(field_id)
    if unknown_fields:
        errors.append(FieldError("custom_fields", f"invalid custom field ids supplied - {','.join(unknown_fields)}"))
    return errors


def _convert_custom(field_type: str, value: Any) -> Any:
    """The stored value, or ValueError when it does not fit the field's type."""
    if field_type == "Text":
        if isinstance(value, str):
            return value
    elif field_type == "Number":
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return value
        if isinstance(value, str):
            number = float(value)  # ValueError for non-numbers, as wanted
            if math.isfinite(number):
                return int(number) if number.is_integer() else number
    elif field_type == "Date" and isinstance(value, str):
        us = _US_DATE.fullmatch(value.strip())
        day = date(int(us[3]), int(us[1]), int(us[2])) if us else datetime.fromisoformat(value.strip()).date()
        return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat().replace("+00:00", "Z")
    raise ValueError(f"expected a {field_type} value")


def _apply_row(state: SendGridEmulatorState, row: dict[str, Any], list_ids: list[str], reject: bool) -> str:
    """Create or update one contact; returns "created"/"updated" or raises ValueError(reason)."""
    if not reject:
        bad = [value for _, value in row_emails(row) if not is_valid_email(value)]
        if bad:
            raise ValueError(invalid_email_message(bad[0]))
    ids = row_identifiers(row)
    if not ids:
        raise ValueError("at least one identifier is required")
    matched = {c.id: c for kind, value in ids.items() if (c := state.find_contact(kind, value)) is not None}
    if len(matched) > 1:
        raise ValueError("the identifiers belong to different contacts")
    contact = next(iter(matched.values()), None)
    if contact is not None:
        missing = [k for k in contact.identifiers if k not in ids]
        changed = [k for k, v in ids.items() if k in contact.identifiers and contact.identifiers[k] != v]
        if missing or changed:
            raise ValueError(f"all existing identifiers of the contact must be present: {', '.join(missing + changed)}")
    custom: dict[str, Any] = {}
    for field_id, value in (row.get("custom_fields") or {}).items():
        definition = state.custom_fields.get(field_id)
        if definition is None:  # deleted after the request was accepted
            raise ValueError(f"custom field id '{field_id}' does not exist")
        try:
            custom[field_id] = _convert_custom(definition.field_type, value)
        except (ValueError, TypeError):
            reason = f"custom field '{definition.name}' ({field_id}) expects a {definition.field_type}"
            raise ValueError(reason) from None
    now = state.now()
    outcome = "updated"
    if contact is None:
        contact = Contact(state.new_id(), now, now)
        state.contacts[contact.id] = contact
        outcome = "created"
    for kind, value in ids.items():
        setattr(contact, kind, value)
    state.index_contact(contact)
    for name in RESERVED_TEXT_FIELDS:
        if isinstance(row.get(name), str):
            setattr(contact, name, row[name])
    if isinstance(row.get("alternate_emails"), list):
        contact.alternate_emails = tuple(str(e).lower() for e in row["alternate_emails"])
    if custom:
        contact.custom = {**(contact.custom or {}), **custom}
    added = tuple(dict.fromkeys(lid for lid in list_ids if lid not in contact.list_ids and lid in state.lists))
    if added:
        contact.list_ids += added
    contact.updated_at = now
    return outcome


def _finish(job: Job, requested: int) -> None:
    errored = len(job.errors)
    job.results = {"requested_count": requested, **job.results, "errored_count": errored}
    job.status = "completed" if errored == 0 else ("failed" if errored >= requested else "errored")


def run_upsert(state: SendGridEmulatorState, job: Job) -> None:
    rows: list[dict[str, Any]] = job.payload["contacts"]
    counts = {"created": 0, "updated": 0}
    for i, row in enumerate(rows):
        try:
            counts[_apply_row(state, row, job.payload.get("list_ids") or [], job.payload["reject_invalid_emails"])] += 1
        except ValueError as exc:
            job.errors.append({"row": i, "identifiers": row_identifiers(row), "message": str(exc)})
    job.results.update({"created_count": counts["created"], "updated_count": counts["updated"]})
    _finish(job, len(rows))


def run_delete(state: SendGridEmulatorState, job: Job) -> None:
    ids: list[str] = list(state.contacts) if job.payload.get("all") else job.payload["ids"]
    deleted = 0
    for contact_id in ids:
        if state.remove_contact(contact_id):
            deleted += 1
        else:
            job.errors.append({"row": None, "identifiers": {"id": contact_id}, "message": "contact not found"})
    job.results["deleted_count"] = deleted
    _finish(job, len(ids))


def run_list_removal(state: SendGridEmulatorState, job: Job) -> None:
    list_id = job.payload["list_id"]
    removed = 0
    for contact_id in job.payload["contact_ids"]:
        contact = state.contacts.get(contact_id)
        if contact is not None and list_id in contact.list_ids:
            contact.list_ids = tuple(lid for lid in contact.list_ids if lid != list_id)
            contact.updated_at = state.now()
            removed += 1
    job.results["removed_count"] = removed
    _finish(job, len(job.payload["contact_ids"]))
    job.status = "completed"  # absent members are not an error: removal is idempotent


def contact_data(state: SendGridEmulatorState, contact: Contact) -> dict[str, Any]:
    """``ContactDetails3`` without links: custom fields are shown by *name*, as SendGrid returns them."""
    data: dict[str, Any] = {"id": contact.id, **contact.identifiers}
    for name in RESERVED_TEXT_FIELDS:  # also runs once per contact of a JSON export: kept lean
        data[name] = getattr(contact, name) or ""
    data["alternate_emails"] = list(contact.alternate_emails)
    data["list_ids"] = list(contact.list_ids)
    data["segment_ids"] = [s.id for s in state.segments.values() if state.in_segment(s, contact)]
    definitions = state.custom_fields
    data["custom_fields"] = {
        definitions[fid].name: value for fid, value in (contact.custom or {}).items() if fid in definitions
    }
    data["created_at"] = iso(contact.created_at)
    data["updated_at"] = iso(contact.updated_at)
    return data


def contact_json(state: SendGridEmulatorState, contact: Contact, base_url: str) -> dict[str, Any]:
    """The contact as ``GET /v3/marketing/contacts/{id}`` shows it."""
    data = contact_data(state, contact)
    data["_metadata"] = {"self": f"{base_url}/v3/marketing/contacts/{contact.id}"}
    return data
