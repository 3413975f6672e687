"""Marketing lists (tsg_mc_lists_v3): CRUD, member counts, member removal, token pagination.

Members are added through the contacts PUT (``list_ids``) and removed with ``DELETE
/v3/marketing/lists/{id}/contacts?contact_ids=a,b``, an asynchronous job (202 ``{job_id}``)
that leaves the contacts themselves alone. ``GET /v3/marketing/lists`` pages with
``page_size`` (1-1000, default 100) and an opaque ``page_token``; clients follow
``_metadata.next`` (a full URL) until it is absent, as Airbyte's connector does.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from sgbridge.emulators.sendgrid.contact_ops import contact_json, run_delete, run_list_removal
from sgbridge.emulators.sendgrid.contacts import MARKETING_READ, MARKETING_WRITE
from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.state import MarketingList, SendGridEmulatorState
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


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = text.partition(":")
        if kind == "offset" and number.isdigit():
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise bad_request("invalid page_token", "page_token")


def list_json(state: SendGridEmulatorState, item: MarketingList, base_url: str) -> dict[str, Any]:
    return {
        "id": item.id,
        "name": item.name,
        "contact_count": len(state.list_members(item.id)),
        "_metadata": {"self": f"{base_url}/v3/marketing/lists/{item.id}"},
    }


def _get(call: Call) -> MarketingList:
    item = call.state.lists.get(call.params["id"])
    if item is None:
        raise not_found("list not found", "id")
    return item


def all_lists(call: Call) -> Response:
    state = call.state
    size = int(call.params.get("page_size", DEFAULT_PAGE_SIZE))
    token = call.params.get("page_token")
    offset = decode_page_token(token) if token else 0
    lists = list(state.lists.values())
    base = f"{call.base_url}/v3/marketing/lists"

    def page_url(at: int) -> str:
        return f"{base}?{urlencode({'page_size': size, 'page_token': encode_page_token(at) if at else ''})}"

    metadata: dict[str, Any] = {"self": page_url(offset), "count": len(lists)}
    if offset + size < len(lists):
        metadata["next"] = page_url(offset + size)
    if offset > 0:
        metadata["prev"] = page_url(max(0, offset - size))
    page = [list_json(state, item, call.base_url) for item in lists[offset:offset + size]]
    return json_response({"result": page, "_metadata": metadata})


def create_list(call: Call) -> Response:
    state = call.state
    if len(state.lists) >= MAX_LISTS:
        raise bad_request(f"you can have at most {MAX_LISTS} lists", "name")
    item = MarketingList(state.new_id(), call.body["name"], state.now())
    state.lists[item.id] = item
    return json_response(list_json(state, item, call.base_url), 201)


def get_list(call: Call) -> Response:
    item = _get(call)
    data = list_json(call.state, item, call.base_url)
    members = call.state.list_members(item.id)
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
    return json_response(list_json(call.state, item, call.base_url))


def delete_list(call: Call) -> Response:
    state = call.state
    item = _get(call)
    members = [c.id for c in state.list_members(item.id)]
    del state.lists[item.id]
    if call.params.get("delete_contacts"):
        job = state.schedule_job("delete", run_delete, {"ids": members}, call.base_url)
        return json_response({"job_id": job.id}, 200)
    for contact_id in members:
        state.contacts[contact_id].list_ids.remove(item.id)
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
