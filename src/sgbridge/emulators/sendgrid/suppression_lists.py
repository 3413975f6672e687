"""The suppression lists a warehouse sync reads (tsg_suppressions_v3, sendgrid-api.md §3.7, §3.9).

``GET /v3/suppression/{bounces|blocks|spam_reports|invalid_emails|unsubscribes}`` answer a
bare JSON array, filtered by ``start_time`` / ``end_time`` (epoch seconds, both inclusive, on
``created``) and ``email``, and paged with ``limit`` (1-500, validated by the spec) and
``offset``. SendGrid does not publish the default ``limit``; the emulator returns up to 500.

``email`` follows the spec's description: a prefix of the address, with ``%`` matching any
run of characters (``%market%tree``). Rows are ordered newest first, then by address, so an
offset-paged read of an unchanging list visits every row exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from starlette.responses import Response

from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.state import SendGridEmulatorState, SuppressionEntry
from sgbridge.emulators.sendgrid.util import json_response

MAX_LIMIT = 500
Row = dict[str, Any]


def email_matcher(pattern: str) -> Callable[[str], bool]:
    """The spec's ``email`` filter: prefix match, ``%`` as a wildcard, case-insensitive."""
    regex = re.compile(".*".join(re.escape(part) for part in pattern.lower().split("%")))
    return lambda email: regex.match(email) is not None


def _bounce_row(email: str, entry: SuppressionEntry) -> Row:
    return {"created": entry.created, "email": email, "reason": entry.reason, "status": entry.status}


def _spam_row(email: str, entry: SuppressionEntry) -> Row:
    return {"created": entry.created, "email": email, "ip": entry.ip}


def _invalid_row(email: str, entry: SuppressionEntry) -> Row:
    return {"created": entry.created, "email": email, "reason": entry.reason}


# list name -> (the state's container, how a row looks)
LISTS: dict[str, tuple[Callable[[SendGridEmulatorState], dict[str, SuppressionEntry]],
                       Callable[[str, SuppressionEntry], Row]]] = {
    "bounces": (lambda state: state.bounces, _bounce_row),
    "blocks": (lambda state: state.blocks, _bounce_row),
    "spam_reports": (lambda state: state.spam_reports, _spam_row),
    "invalid_emails": (lambda state: state.invalid_emails, _invalid_row),
}


def select_rows(rows: Iterable[Row], params: dict[str, Any]) -> list[Row]:
    """Filter on ``start_time`` / ``end_time`` / ``email``, order newest first, cut the page."""
    start, end = params.get("start_time"), params.get("end_time")
    matches = email_matcher(str(params["email"])) if params.get("email") else None
    kept = [
        row for row in rows
        if (start is None or row["created"] >= start) and (end is None or row["created"] <= end)
        and (matches is None or matches(row["email"]))
    ]
    kept.sort(key=lambda row: (-row["created"], row["email"]))
    offset = int(params.get("offset", 0))
    return kept[offset:offset + int(params.get("limit", MAX_LIMIT))]


def _listing(name: str) -> Callable[[Call], Response]:
    container, render = LISTS[name]

    def handler(call: Call) -> Response:
        rows = (render(email, entry) for email, entry in container(call.state).items())
        return json_response(select_rows(rows, call.params))

    handler.__name__ = f"list_{name}"
    return handler


def list_unsubscribes(call: Call) -> Response:
    rows = ({"created": int(at), "email": email} for email, at in call.state.global_suppressions.items())
    return json_response(select_rows(rows, call.params))


def _scopes(name: str) -> tuple[str, ...]:
    return ("suppression.read", f"suppression.{name}.read")  # the broad scope or the narrow one


ENDPOINTS = [
    *(Endpoint("GET", f"/v3/suppression/{name}", _listing(name), _scopes(name)) for name in LISTS),
    Endpoint("GET", "/v3/suppression/unsubscribes", list_unsubscribes, _scopes("unsubscribes")),
]
