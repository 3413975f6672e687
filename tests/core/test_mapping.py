"""The SendGrid → Segment mapping as a pure function, against seed 002's names and fields."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgbridge.routing.sendgrid_to_segment import Skip, to_segment_track
from sgbridge.settings import DEFAULT_EVENTS, SELECTABLE_EVENTS
from tests.conftest import PEER_FIXTURES

CASES = json.loads((PEER_FIXTURES / "sendgrid" / "events" / "docs_examples_by_case.json").read_text())
ALL = frozenset(SELECTABLE_EVENTS)


def _map(event: dict, selected: frozenset[str] = ALL, **kw) -> dict:  # type: ignore[no-untyped-def]
    result = to_segment_track(event, key=b"\x01" * 16, received_at=1_700_000_000.0, selected=selected, **kw)
    assert isinstance(result, dict), result
    return result


@pytest.mark.parametrize(("event", "name"), [
    ({"event": "processed"}, "Email Processed"),
    ({"event": "delivered"}, "Email Delivered"),
    ({"event": "open"}, "Email Opened"),
    ({"event": "open", "sg_machine_open": False}, "Email Opened"),
    ({"event": "open", "sg_machine_open": True}, "Email Machine Opened"),
    ({"event": "click"}, "Email Link Clicked"),
    ({"event": "dropped"}, "Email Dropped"),
    ({"event": "bounce", "type": "bounce"}, "Email Bounced"),
    ({"event": "bounce", "type": "blocked"}, "Email Bounced"),
    ({"event": "unsubscribe"}, "Unsubscribed"),
    ({"event": "group_unsubscribe"}, "Unsubscribed From Group"),
    ({"event": "group_resubscribe"}, "Resubscribed To Group"),
    ({"event": "spamreport"}, "Email Marked as Spam"),
    ({"event": "deferred"}, "Email Deferred"),
])
def test_event_names(event: dict, name: str) -> None:
    assert _map({"email": "a@example.com", "timestamp": 1, **event})["event"] == name


def test_identity_is_the_hash_of_the_normalised_email_and_raw_email_in_traits() -> None:
    message = _map({"email": "  Jane.Doe@Example.COM ", "event": "delivered", "timestamp": 1})
    assert message["anonymousId"] == hashlib.sha256(b"jane.doe@example.com").hexdigest()
    assert message["context"]["traits"]["email"] == "  Jane.Doe@Example.COM "
    assert "userId" not in message


def test_user_id_from_a_configured_custom_arg() -> None:
    message = _map({"email": "a@example.com", "event": "open", "timestamp": 1, "user_id": "42"}, user_id_arg="user_id")
    assert message["userId"] == "42"


def test_recipient_ip_and_agent_go_to_traits_only_for_engagement() -> None:
    click = _map({"email": "a@example.com", "event": "click", "timestamp": 1, "ip": "1.2.3.4", "useragent": "UA",
                  "url": "https://x.test/"})
    assert click["context"]["traits"] == {"email": "a@example.com", "ip": "1.2.3.4", "user_agent": "UA"}
    assert click["properties"]["link_url"] == "https://x.test/"
    delivered = _map({"email": "a@example.com", "event": "delivered", "timestamp": 1, "ip": "168.1.1.1"})
    assert "ip" not in delivered["context"]["traits"] and delivered["properties"]["sending_ip"] == "168.1.1.1"


def test_single_send_fields_from_the_docs_example() -> None:
    single_send = next(e for e in _flatten(CASES) if isinstance(e, dict) and e.get("singlesend_id"))
    message = _map(single_send)
    props = message["properties"]
    assert props["email_type"] == "Singlesend"
    assert props["campaign_id"] == single_send["singlesend_id"]
    assert props["campaign_name"] == single_send["singlesend_name"]
    assert props["template_id"] == single_send["template_id"]
    assert props["test_phase"] is False
    assert props["categories"] == []
    assert message["timestamp"] == "2020-06-09T18:19:12.372Z"  # the example's timestamp is in milliseconds


def test_automation_fields() -> None:
    props = _map({"email": "a@example.com", "event": "delivered", "timestamp": 1, "mc_auto_id": "au1",
                  "mc_auto_name": "Welcome", "mc_auto_step_id": "st1", "mc_stats": "automation"})["properties"]
    assert (props["email_type"], props["automation_id"], props["automation_name"], props["automation_step_id"]) == (
        "Automation", "au1", "Welcome", "st1")


def test_custom_args_never_override_sendgrid_fields() -> None:
    props = _map({"email": "a@example.com", "event": "bounce", "timestamp": 1, "reason": "550", "sg_event_id": "x",
                  "categories": "custom", "campaign": "spring"})["properties"]
    assert props["campaign"] == "spring" and props["reason"] == "550" and props["sg_event_id"] == "x"


def test_every_docs_example_maps_or_is_skipped_with_a_reason() -> None:
    for event in _flatten(CASES):
        if not isinstance(event, dict) or "event" not in event:
            continue
        result = to_segment_track(event, key=b"k" * 16, received_at=1.0, selected=ALL)
        assert isinstance(result, dict | Skip)
        if isinstance(result, dict):
            assert result["messageId"].startswith("sgb-") and len(result["messageId"]) <= 100


@pytest.mark.parametrize(("event", "reason"), [
    ({"event": "deferred", "email": "a@example.com"}, "not selected"),
    ({"event": "account_status_change", "type": "compliance_ban"}, "unknown event type"),
    ({"event": "delivered", "email": ""}, "no recipient email"),
])
def test_skips(event: dict, reason: str) -> None:
    result = to_segment_track(event, key=b"k" * 16, received_at=1.0, selected=frozenset(DEFAULT_EVENTS))
    assert isinstance(result, Skip) and reason in result.reason


def _flatten(node: object) -> list[object]:
    if isinstance(node, list):
        return [x for item in node for x in _flatten(item)]
    if isinstance(node, dict):
        if "event" in node and isinstance(node.get("event"), str):
            return [node]
        return [x for value in node.values() for x in _flatten(value)]
    return []


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.floats(min_value=1e-6, max_value=32503679999.999, allow_nan=False),
                 st.integers(min_value=1, max_value=32503679999),
                 st.integers(min_value=1, max_value=32503679999).map(lambda s: s + 0.9995),
                 st.integers(min_value=1, max_value=32503679999).map(lambda s: s + 0.0005),
                 st.integers(min_value=1, max_value=32503679999).map(lambda s: s + 0.9999996)))
def test_event_times_are_what_datetime_writes(value: float) -> None:
    """The cached formatting gives datetime's own text for every time, rounding included."""
    from datetime import UTC, datetime

    from sgbridge.routing.sendgrid_to_segment import iso_utc_ms

    expected = datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert iso_utc_ms(value) == expected
