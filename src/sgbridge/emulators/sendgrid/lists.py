"""Marketing lists (tsg_mc_lists_v3): CRUD, member counts, member removal, token pagination.

Members are added through the contacts PUT (``list_ids``) and removed with ``DELETE
/v3/marketing/lists/{id}/contacts?contact_ids=a,b``, an asynchronous job (202 ``{job_id}``)
that leaves the contacts themselves alone. ``GET /v3/marketing/lists`` pages with
``page_size`` (1-1000, default 100) and an opaque ``page_token`` (see ``paging``); clients
follow ``_metadata.next`` (a full URL) until it is absent, as Airbyte's connector does.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from sgbridge.emulators.sendgrid.contact_ops import contact_json, run_delete, run_list_removal
from sgbridge.emulators.sendgrid.contacts import MARKETING_READ, MARKETING_WRITE
from sgbridge.emulators.sendgrid.paging import token_page
from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.state import MarketingList
from sgbridge.emulators.sendgrid.util import (
    ApiError,
    FieldError,
    bad_request,
    csv_ids,
    empty_response,
    json_response,
    not_found,
)

DEFAULT_PAGE_SIZE = 100
MAX_LISTS = 1000  # SendGrid's documented per-account list limit


def list_json(item: MarketingList, contact_count: int, base_url: str) -> dict[str, Any]:
    return {
        "id": item.id,
        "name": item.name,
        "contact_count": contact_count,
        "_metadata": {"self": f"{base_url}/v3/marketing/lists/{item.id}"},
    }


def _get(call: Call) -> MarketingList:
    item = call.state.lists.get(call.params["id"])
    if item is None:
        raise not_found("list not found", "id")
    return item


def all_lists(call: Call) -> Response:
    state = call.state
    page, metadata = token_page(
        list(state.lists.values()), url=f"{call.base_url}/v3/marketing/lists",
        size=int(call.params.get("page_size", DEFAULT_PAGE_SIZE)), token=call.params.get("page_token"),
    )
    counts = state.list_member_counts() if page else {}
    result = [list_json(item, counts.get(item.id, 0), call.base_url) for item in page]
    return json_response({"result": result, "_metadata": metadata})


def create_list(call: Call) -> Response:
    state = call.state
    if len(state.lists) >= MAX_LISTS:
        raise bad_request(f"you can have at most {MAX_LISTS} lists", "name")
    item = MarketingList(state.new_id(), call.body["name"], state.now())
    state.lists[item.id] = item
    return json_response(list_json(item, 0, call.base_url), 201)


def get_list(call: Call) -> Response:
    item = _get(call)
    members = call.state.list_members(item.id)
    data = list_json(item, len(members), call.base_url)
    if call.params.get("contact_sample") and members:
        newest = max(members, key=lambda c: c.updated_at)
        data["contact_sample"] = contact_json(call.state, newest, call.base_url)
    return json_response(data)


def update_list(call: Call) -> Response:
    item = _get(call)
    name = call.body.get("name")
    if name is not None:
        if not name.strip():
            raise bad_request("name may not be empty", "name")
        item.name = name
    return json_response(list_json(item, len(call.state.list_members(item.id)), call.base_url))


def delete_list(call: Call) -> Response:
    state = call.state
    item = _get(call)
    members = [c.id for c in state.list_members(item.id)]
    del state.lists[item.id]
    if call.params.get("delete_contacts"):
        job = state.schedule_job("delete", run_delete, {"ids": members}, call.base_url)
        return json_response({"job_id": job.id}, 200)
    for contact_id in members:
        contact = state.contacts[contact_id]
        contact.list_ids = tuple(lid for lid in contact.list_ids if lid != item.id)
    return empty_response(204)


def remove_list_members(call: Call) -> Response:
    state = call.state
    item = _get(call)
    ids = csv_ids(call.params["contact_ids"])
    if not ids:
        raise bad_request("contact_ids is required", "contact_ids")
    unknown = [cid for cid in ids if cid not in state.contacts]
    if unknown:  # spec 404: "one or more contact IDs do not exist"
        raise ApiError(404, [FieldError("contact_ids", f"contact id '{cid}' does not exist") for cid in unknown])
    job = state.schedule_job("list_removal", run_list_removal, {"list_id": item.id, "contact_ids": ids}, call.base_url)
    return json_response({"job_id": job.id}, 202)


def list_contact_count(call: Call) -> Response:
    count = len(call.state.list_members(_get(call).id))
    return json_response({"contact_count": count, "billable_count": count})


ENDPOINTS = [
    Endpoint("GET", "/v3/marketing/lists", all_lists, MARKETING_READ),
    Endpoint("POST", "/v3/marketing/lists", create_list, MARKETING_WRITE),
    Endpoint("GET", "/v3/marketing/lists/{id}", get_list, MARKETING_READ),
    Endpoint("PATCH", "/v3/marketing/lists/{id}", update_list, MARKETING_WRITE),
    Endpoint("DELETE", "/v3/marketing/lists/{id}", delete_list, MARKETING_WRITE),
    Endpoint("DELETE", "/v3/marketing/lists/{id}/contacts", remove_list_members, MARKETING_WRITE),
    Endpoint("GET", "/v3/marketing/lists/{id}/contacts/count", list_contact_count, MARKETING_READ),
]
