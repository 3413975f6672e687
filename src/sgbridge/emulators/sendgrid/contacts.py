"""Marketing contacts endpoints: upsert, delete, fetch, count and job status (tsg_mc_contacts_v3).

Upserts and deletes are asynchronous as in SendGrid: they answer ``202 {"job_id"}`` and change
nothing until the job is due (see ``state.SendGridEmulatorState.tick``); ``GET
/v3/marketing/contacts/imports/{id}`` then moves from ``pending`` to ``completed``, ``errored``
(some rows failed) or ``failed`` (all rows failed), with ``results`` counts and, when rows
failed, an ``errors_url`` to a CSV of those rows.
"""

from __future__ import annotations

import heapq

import orjson
from starlette.responses import Response

from sgbridge.emulators.sendgrid.contact_ops import check_upsert, contact_json, run_delete, run_upsert
from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.util import ApiError, FieldError, bad_request, csv_ids, json_response, not_found

MARKETING_READ = ("marketing.read",)
MARKETING_WRITE = ("marketing.write",)
MAX_UPSERT_BYTES = 6 * 1024 * 1024  # "up to 30,000 contacts, or 6MB of data, whichever is lower"
SAMPLE_SIZE = 50  # GET /v3/marketing/contacts returns "up to 50 of the most recent contacts"


def upsert_contacts(call: Call) -> Response:
    state, body = call.state, call.body
    if len(orjson.dumps(body)) > MAX_UPSERT_BYTES:
        raise bad_request("request body exceeds 6MB", "contacts")
    unknown_lists = [lid for lid in body.get("list_ids") or [] if lid not in state.lists]
    if unknown_lists:
        raise ApiError(404, [FieldError("list_ids", f"list id '{lid}' does not exist") for lid in unknown_lists])
    errors = check_upsert(state, body, call.emulator.reject_invalid_emails)
    if errors:
        raise ApiError(400, errors)
    payload = {
        "contacts": body["contacts"],
        "list_ids": list(body.get("list_ids") or []),
        "reject_invalid_emails": call.emulator.reject_invalid_emails,
    }
    job = state.schedule_job("upsert", run_upsert, payload, call.base_url)
    return json_response({"job_id": job.id}, 202)


def delete_contacts(call: Call) -> Response:
    ids = call.params.get("ids")
    delete_all = call.params.get("delete_all_contacts")
    if ids and delete_all:
        raise bad_request("set either ids or delete_all_contacts, not both")
    if delete_all is not None and delete_all != "true":
        raise bad_request("delete_all_contacts must be set to \"true\" to delete all contacts", "delete_all_contacts")
    if delete_all == "true":
        payload: dict[str, object] = {"all": True}
    elif ids and csv_ids(ids):
        payload = {"ids": csv_ids(ids)}
    else:
        raise bad_request("either ids or delete_all_contacts is required", "ids")
    job = call.state.schedule_job("delete", run_delete, payload, call.base_url)
    return json_response({"job_id": job.id}, 202)


def sample_contacts(call: Call) -> Response:
    state = call.state
    # nlargest, not a full sort: a seeded account has a million contacts (same order, ties included).
    recent = heapq.nlargest(SAMPLE_SIZE, state.contacts.values(), key=lambda c: c.updated_at)
    return json_response({
        "result": [contact_json(state, c, call.base_url) for c in recent],
        "contact_count": len(state.contacts),
        "_metadata": {"self": f"{call.base_url}/v3/marketing/contacts"},
    })


def count_contacts(call: Call) -> Response:
    count = len(call.state.contacts)
    return json_response({"contact_count": count, "billable_count": count})


def get_contact(call: Call) -> Response:
    contact = call.state.contacts.get(call.params["id"])
    if contact is None:
        raise not_found("Contact not found", "id")
    return json_response(contact_json(call.state, contact, call.base_url))


def import_status(call: Call) -> Response:
    job = call.state.jobs.get(call.params["id"])
    if job is None or job.job_type not in ("upsert", "delete"):  # list-member removals are not imports
        raise not_found("job not found", "id")
    return json_response(call.state.job_json(job))


ENDPOINTS = [
    Endpoint("PUT", "/v3/marketing/contacts", upsert_contacts, MARKETING_WRITE),
    Endpoint("DELETE", "/v3/marketing/contacts", delete_contacts, MARKETING_WRITE),
    Endpoint("GET", "/v3/marketing/contacts", sample_contacts, MARKETING_READ),
    Endpoint("GET", "/v3/marketing/contacts/count", count_contacts, MARKETING_READ),
    Endpoint("GET", "/v3/marketing/contacts/imports/{id}", import_status, MARKETING_READ),
]
# Declared after every literal /v3/marketing/contacts/... route so "count" is never taken as an id.
LATE_ENDPOINTS = [Endpoint("GET", "/v3/marketing/contacts/{id}", get_contact, MARKETING_READ)]
