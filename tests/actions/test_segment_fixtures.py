"""Segment's own tests of its SendGrid, SendGrid Lists and Webhook destinations, run on sgbridge.

Each fixture gives an event, settings, a mapping and the answers Segment's test mocked; the
requests the mocked server receives from sgbridge must be the requests Segment's code made.
Compared as the fixtures' README says: JSON bodies as data, ``body_raw`` byte for byte, the
listed headers. Documented differences (docs/actions.md, "Differences from Segment"):

* GET requests are not compared: sgbridge caches field definitions and reads them only when a
  custom field has to be resolved, where Segment reads them on every call.
* ``sendEmail`` adds ``segment_user_id`` (the userId), ``segment_anonymous_id`` and
  ``segment_message_id`` to ``custom_args``; they are checked, then removed before the comparison.
* The User-Agent is sgbridge's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from sgbridge.actions.sendgrid.plans import ANONYMOUS_ID_ARG, MESSAGE_ID_ARG, USER_ID_ARG
from sgbridge.actions.testing import run_action_test
from tests.actions.replay import Received, ReplayApi
from tests.conftest import PEER_FIXTURES

FIXTURES = PEER_FIXTURES / "segment-action-destinations"
FOLDERS = ("sendgrid", "sendgrid-audiences", "webhook")


def _runnable() -> list[Path]:
    found = []
    for folder in FOLDERS:
        for path in sorted((FIXTURES / folder).glob("*.json")):
            data = json.loads(path.read_text())
            if "input" in data and "expected_requests" in data:
                found.append(path)
    return found


def _destination(data: dict[str, Any], path: Path) -> str:
    declared = str(data.get("destination") or path.parent.name).split()[0]
    return declared.removeprefix("actions-")


def _strip_sgbridge_args(body: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """Check and remove the custom_args sgbridge adds to every email."""
    args = body["personalizations"][0]["custom_args"]
    for arg, field in ((USER_ID_ARG, "userId"), (ANONYMOUS_ID_ARG, "anonymousId")):
        assert args.pop(arg, None) == (None if event.get(field) in (None, "") else str(event[field])), arg
    assert args.pop(MESSAGE_ID_ARG) == event["messageId"]
    if not args:
        del body["personalizations"][0]["custom_args"]
    return body


def assert_same_requests(received: list[Received], expected: list[dict[str, Any]],
                         events: list[dict[str, Any]]) -> None:
    writes = [r for r in received if r.method != "GET"]
    wanted = [e for e in expected if e["method"].upper() != "GET"]
    assert [(r.method, r.url) for r in writes] == [(e["method"].upper(), e["url"]) for e in wanted]
    for got, want in zip(writes, wanted, strict=True):
        body = got.json()
        mail = got.url.endswith("/v3/mail/send")
        if mail:
            body = _strip_sgbridge_args(body, events[0])
        if "json" in want:
            assert body == want["json"], got.url
        if "body_raw" in want and not mail:
            assert got.body.decode() == want["body_raw"]
        for name, value in (want.get("headers") or {}).items():
            if name.lower() != "user-agent":
                assert got.headers.get(name.lower()) == value, name


@pytest.mark.anyio
@pytest.mark.parametrize("path", _runnable(), ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_fixture(path: Path) -> None:
    data = json.loads(path.read_text())
    api = ReplayApi(data.get("mock_responses") or [])
    events = data["input"].get("events") or [data["input"]["event"]]
    payload: Any = events if "events" in data["input"] else events[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api)) as client:
        action = str(data.get("action", "send")).split()[0]
        report = await run_action_test(_destination(data, path), action, data.get("settings") or {},
                                       data.get("mapping") or {}, payload,
                                       use_defaults=bool(data.get("useDefaultMappings")), client=client,
                                       job_poll_seconds=0.01)
    assert_same_requests(api.received, data["expected_requests"], events)
    result = data.get("expected_result") or {}
    if "multistatus" in result:
        assert len(report["multistatus"]) == len(result["multistatus"])
        for got, want in zip(report["multistatus"], result["multistatus"], strict=True):
            assert got["status"] == want["status"]
            if "errormessage" in want:
                assert got["errormessage"] == want["errormessage"]
    if "single_event_error" in result or "expected_error" in data:
        assert all(r["outcome"] == "rejected" for r in report["results"])
    elif result:
        assert all(r["outcome"] == "delivered" for r in report["results"]), report["results"]
