"""Unsubscribe groups and suppressions (tsg_suppressions_v3, sendgrid-api.md §3.7).

Behaviour worth emulating because a bridge can get it wrong:

* adding addresses to a group that does not exist puts them on the **global** unsubscribe
  list (documented; the answer is still 201);
* deleting a group un-suppresses its members;
* ``GET /v3/asm/suppressions/global/{email}`` answers 200 ``{}`` for an address that is not
  suppressed, not 404;
* addresses are compared case-insensitively and stored lower-case.

The bounce / block / spam report / invalid e-mail / unsubscribe listings are in
``suppression_lists``.

Mail sends consult these lists (see ``mail``): a suppressed recipient is accepted and dropped.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.state import AsmGroup
from sgbridge.emulators.sendgrid.util import (
    ApiError,
    FieldError,
    bad_request,
    empty_response,
    is_valid_email,
    json_response,
    not_found,
)

MAX_GROUPS = 200


def group_json(group: AsmGroup, with_count: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": group.id, "name": group.name, "description": group.description, "is_default": group.is_default,
    }
    if with_count:
        data["unsubscribes"] = len(group.members)
    return data


def _emails(call: Call) -> list[str]:
    emails: list[str] = call.body["recipient_emails"]
    bad = [FieldError(f"recipient_emails.{i}", f"email '{e}' is not valid")
           for i, e in enumerate(emails) if not is_valid_email(e)]
    if bad:
        raise ApiError(400, bad)
    return [e.lower() for e in emails]


def _maybe_group(call: Call) -> AsmGroup | None:
    raw = str(call.params["group_id"])
    return call.state.groups.get(int(raw)) if raw.isdigit() else None


def _group(call: Call) -> AsmGroup:
    group = _maybe_group(call)
    if group is None:
        raise not_found("group not found", "group_id")
    return group


def _set_default(call: Call, group: AsmGroup, is_default: Any) -> None:
    if is_default:  # one default group per account
        for other in call.state.groups.values():
            other.is_default = other is group
    elif is_default is not None:
        group.is_default = False


def list_groups(call: Call) -> Response:
    wanted = call.params.get("id")
    groups = [g for g in call.state.groups.values() if not wanted or g.id in wanted]
    return json_response([group_json(g) for g in groups])


def create_group(call: Call) -> Response:
    state, body = call.state, call.body
    if len(state.groups) >= MAX_GROUPS:
        raise bad_request(f"you can have at most {MAX_GROUPS} groups", "name")
    if any(g.name == body["name"] for g in state.groups.values()):
        raise bad_request("another group with this name already exists", "name")
    group = AsmGroup(state.next_group_id, body["name"], body.get("description", ""), False)
    state.next_group_id += 1
    state.groups[group.id] = group
    _set_default(call, group, body.get("is_default"))
    return json_response(group_json(group, with_count=False), 201)


def get_group(call: Call) -> Response:
    group = _group(call)
    return json_response(group_json(group))


def update_group(call: Call) -> Response:
    group = _group(call)
    body = call.body
    group.name = body.get("name", group.name)
    group.description = body.get("description", group.description)
    _set_default(call, group, body.get("is_default"))
    return json_response(group_json(group, with_count=False), 201)  # the spec documents 201


def delete_group(call: Call) -> Response:
    group = _group(call)
    del call.state.groups[group.id]
    return empty_response(204)


def add_to_group(call: Call) -> Response:
    emails = _emails(call)
    group = _maybe_group(call)
    now = call.state.now()
    target = group.members if group is not None else call.state.global_suppressions
    for email in emails:
        target.setdefault(email, now)
    return json_response({"recipient_emails": emails}, 201)


def group_members(call: Call) -> Response:
    group = _group(call)
    return json_response(list(group.members))


def remove_from_group(call: Call) -> Response:
    group = _group(call)
    group.members.pop(str(call.params["email"]).lower(), None)
    return empty_response(204)


def _int_query(call: Call, name: str) -> int | None:
    value = call.request.query_params.get(name, "")
    return int(value) if value.isdigit() else None


def all_group_suppressions(call: Call) -> Response:
    # The spec declares no query parameters here, yet Airbyte's suppression_group_members stream
    # sends limit/offset (500 a page) and start_time/end_time. Were they ignored, a client paging
    # until a short page would loop forever on 500+ members, so they are applied when they are
    # valid numbers and otherwise ignored, as undeclared parameters are.
    start, end = _int_query(call, "start_time"), _int_query(call, "end_time")
    rows = [
        {"email": email, "group_id": g.id, "group_name": g.name, "created_at": int(at)}
        for g in call.state.groups.values() for email, at in g.members.items()
        if (start is None or int(at) >= start) and (end is None or int(at) <= end)
    ]
    offset, limit = _int_query(call, "offset") or 0, _int_query(call, "limit")
    return json_response(rows[offset:] if limit is None else rows[offset:offset + limit])


def add_global(call: Call) -> Response:
    emails = _emails(call)
    now = call.state.now()
    for email in emails:
        call.state.global_suppressions.setdefault(email, now)
    return json_response({"recipient_emails": emails}, 201)


def get_global(call: Call) -> Response:
    email = str(call.params["email"]).lower()
    return json_response({"recipient_email": email} if email in call.state.global_suppressions else {})


def delete_global(call: Call) -> Response:
    call.state.global_suppressions.pop(str(call.params["email"]).lower(), None)
    return empty_response(204)


GROUPS_READ = ("asm.groups.read",)
GROUPS_WRITE = ("asm.groups.update",)
ENDPOINTS = [
    Endpoint("GET", "/v3/asm/groups", list_groups, GROUPS_READ),
    Endpoint("POST", "/v3/asm/groups", create_group, ("asm.groups.create",)),
    Endpoint("GET", "/v3/asm/groups/{group_id}", get_group, GROUPS_READ),
    Endpoint("PATCH", "/v3/asm/groups/{group_id}", update_group, GROUPS_WRITE),
    Endpoint("DELETE", "/v3/asm/groups/{group_id}", delete_group, ("asm.groups.delete",)),
    Endpoint("POST", "/v3/asm/groups/{group_id}/suppressions", add_to_group, ("asm.groups.suppressions.create",)),
    Endpoint("GET", "/v3/asm/groups/{group_id}/suppressions", group_members, ("asm.groups.suppressions.read",)),
    Endpoint("DELETE", "/v3/asm/groups/{group_id}/suppressions/{email}", remove_from_group,
             ("asm.groups.suppressions.delete",)),
    Endpoint("GET", "/v3/asm/suppressions", all_group_suppressions, ("asm.groups.suppressions.read",)),
    Endpoint("POST", "/v3/asm/suppressions/global", add_global, ("asm.suppressions.global.create",)),
    Endpoint("GET", "/v3/asm/suppressions/global/{email}", get_global, ("asm.suppressions.global.read",)),
    Endpoint("DELETE", "/v3/asm/suppressions/global/{email}", delete_global, ("asm.suppressions.global.delete",)),
]
