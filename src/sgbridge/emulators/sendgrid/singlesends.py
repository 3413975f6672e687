"""Single Sends, read side (tsg_mc_singlesends_v3, sendgrid-api.md §3.5).

``GET /v3/marketing/singlesends`` pages with ``page_size`` and ``page_token`` like the lists
(see ``paging``) and shows the condensed form (``singlesend_response_short``);
``GET /v3/marketing/singlesends/{id}`` the full one, with ``send_to`` and ``email_config``.
The spec declares neither a default nor a maximum ``page_size``; the emulator uses the
lists' default of 100 and no maximum.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from sgbridge.emulators.sendgrid.contacts import MARKETING_READ
from sgbridge.emulators.sendgrid.paging import token_page
from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.state import SingleSend
from sgbridge.emulators.sendgrid.util import iso, json_response, not_found

DEFAULT_PAGE_SIZE = 100

# SendGrid shows an A/B test's settings on tests only; seeded ones all test the subject line.
_ABTEST_SUMMARY = {
    "type": "subject", "winner_criteria": "open", "test_percentage": 20, "duration": "1 day",
    "winning_template_id": "", "winner_selected_at": None, "expiration_date": None,
}


def single_send_summary(item: SingleSend) -> dict[str, Any]:
    return {
        "id": item.id,
        "name": item.name,
        "abtest": dict(_ABTEST_SUMMARY) if item.is_abtest else None,
        "status": item.status,
        "categories": list(item.categories),
        "send_at": None if item.send_at is None else iso(item.send_at),
        "is_abtest": item.is_abtest,
        "updated_at": iso(item.updated_at),
        "created_at": iso(item.created_at),
    }


def single_send_details(item: SingleSend) -> dict[str, Any]:
    return {
        "id": item.id,
        "name": item.name,
        "status": item.status,
        "categories": list(item.categories),
        "send_at": None if item.send_at is None else iso(item.send_at),
        "send_to": {"list_ids": list(item.list_ids), "segment_ids": list(item.segment_ids), "all": item.send_to_all},
        "updated_at": iso(item.updated_at),
        "created_at": iso(item.created_at),
        "email_config": {
            "subject": item.subject,
            "html_content": item.html_content,
            "plain_content": item.plain_content,
            "generate_plain_content": True,
            "design_id": "",
            "editor": "code",
            "suppression_group_id": item.suppression_group_id,
            "custom_unsubscribe_url": None,
            "sender_id": item.sender_id,
            "ip_pool": None,
        },
    }


def all_single_sends(call: Call) -> Response:
    page, metadata = token_page(
        list(call.state.single_sends.values()), url=f"{call.base_url}/v3/marketing/singlesends",
        size=int(call.params.get("page_size", DEFAULT_PAGE_SIZE)), token=call.params.get("page_token"),
    )
    return json_response({"result": [single_send_summary(s) for s in page], "_metadata": metadata})


def get_single_send(call: Call) -> Response:
    item = call.state.single_sends.get(call.params["id"])
    if item is None:
        raise not_found("single send not found", "id")
    return json_response(single_send_details(item))


ENDPOINTS = [
    Endpoint("GET", "/v3/marketing/singlesends", all_single_sends, MARKETING_READ),
    Endpoint("GET", "/v3/marketing/singlesends/{id}", get_single_send, MARKETING_READ),
]
