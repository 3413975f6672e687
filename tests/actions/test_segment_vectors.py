"""Segment's unit-test vectors for the helpers the actions use, and its validation messages."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sgbridge.actions.engage import engage_membership, legacy_journeys_membership, retl_membership
from sgbridge.actions.sendgrid.plans import (
    E164,
    mail_body,
    parse_int_from_string,
    parse_template_id,
    to_date_format,
    to_unix_ts,
)
from sgbridge.actions.testing import run_action_test
from tests.actions.replay import ReplayApi
from tests.conftest import PEER_FIXTURES

FIXTURES = PEER_FIXTURES / "segment-action-destinations"


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


MEMBERSHIP = _load("engage/audience-membership-vectors.json")["vectors"]


@pytest.mark.parametrize("vector", MEMBERSHIP, ids=lambda v: f"{v['function']}:{v.get('description') or ''}")
def test_audience_membership(vector: dict[str, Any]) -> None:
    function = vector["function"]
    if function == "engage":
        got = engage_membership(vector["event"])
    elif function == "retl":
        got = retl_membership(vector["event"], vector.get("syncMode"))
    else:
        got = legacy_journeys_membership(vector["event"])
    assert got == vector["expected"]


def test_audience_helpers() -> None:
    helpers = _load("sendgrid-audiences/helper-vectors.json")
    for phone, valid in helpers["validatePhone"]:
        assert bool(E164.match(phone)) is valid, phone
    for text, expected in helpers["toDateFormat_MM_DD_YYYY"]:
        assert to_date_format(text) == expected, text


def test_send_email_helpers() -> None:
    vectors = _load("sendgrid/send-email-validation-errors.json")["helper_vectors"]
    for text, expected in vectors["parseTemplateId"]:
        assert parse_template_id(text) == expected
    for text, expected in vectors["parseIntFromString"]:
        assert parse_int_from_string(text) == expected
    for text, expected in vectors["toUnixTS"]:
        assert to_unix_ts(text) == expected


def _with_change(event: dict[str, Any], change: dict[str, Any], now: datetime) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    for dotted, value in change.items():
        if isinstance(value, str) and value.startswith("now "):
            sign, hours = value[4], int(value[6:-1])
            value = (now + timedelta(hours=hours if sign == "+" else -hours)).isoformat()
        target = changed
        *parents, last = dotted.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    return changed


@pytest.mark.anyio
@pytest.mark.parametrize("case", _load("sendgrid/send-email-validation-errors.json")["cases"],
                         ids=lambda c: next(iter(c["change"])))
async def test_send_email_validation(case: dict[str, Any]) -> None:
    base = _load("sendgrid/send-email-dynamic-template-global.json")
    now = datetime(2024, 1, 8, 12, 0, tzinfo=UTC)
    event = _with_change(base["input"]["event"], case["change"], now)
    api = ReplayApi([])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api)) as client:
        report = await run_action_test("sendgrid", "sendEmail", base["settings"], base["mapping"], event,
                                       use_defaults=True, client=client, clock=now.timestamp)
    assert api.received == []  # nothing is sent for an invalid payload
    assert report["results"][0]["outcome"] == "rejected"
    assert report["results"][0]["message"] == case["error"]


def _payload_from_snapshot(body: dict[str, Any]) -> dict[str, Any]:
    """Rebuild the action payload a snapshot's request was made from (the inverse of ``send``)."""
    personalization = body["personalizations"][0]
    payload: dict[str, Any] = {"from": body["from"], "to": personalization["to"][0],
                               "template_id": body["template_id"], "reply_to": body["reply_to"]}
    for key in ("cc", "bcc", "headers", "dynamic_template_data", "custom_args"):
        if personalization.get(key):
            payload[key] = personalization[key]
    for key in ("categories", "ip_pool_name"):
        if key in body:
            payload[key] = body[key]
    if "asm" in body:
        payload["group_id"] = str(body["asm"]["group_id"])
    return payload


@pytest.mark.parametrize("name", ["send-email-snapshot-required-fields.json", "send-email-snapshot-all-fields.json"])
def test_send_email_snapshots(name: str) -> None:
    expected = _load(f"sendgrid/{name}")["expected_requests"][0]["json"]
    assert mail_body(_payload_from_snapshot(expected), now=0) == expected
