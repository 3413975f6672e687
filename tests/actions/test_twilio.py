"""``twilio.sendSms`` against the Twilio emulator (ASGITransport): the form Twilio's API takes, its
answer's sid kept, Twilio's refusals as rejections with its code, and a message sent once per
messageId (held when its outcome is unknown, sent again only on a replay)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sgbridge.actions.runner import ActionRunner, check_subscription
from sgbridge.destinations.actions import JournalMailGuard
from sgbridge.emulators.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_FROM, create_twilio_emulator
from sgbridge.journal import Journal

pytestmark = pytest.mark.anyio
API = "http://twilio.test"
SETTINGS = {"accountSid": DEFAULT_ACCOUNT_SID, "authToken": DEFAULT_AUTH_TOKEN}


def _event(n: int, phone: str = "+447700900123") -> dict[str, Any]:
    return {"type": "track", "event": "Code Requested", "messageId": f"otp-{n}", "userId": "ada",
            "properties": {"phone": phone, "code": "1234"}}


def _runner(client: httpx.AsyncClient, journal: Journal, **mapping: Any) -> ActionRunner:
    sub = check_subscription("s", "twilio", "sendSms", {"from": DEFAULT_FROM, "body": {
        "@template": "Your code is {{properties.code}}"}, **mapping}, "event = \"Code Requested\"")
    return ActionRunner("twilio", SETTINGS, [sub], client, endpoint=API,
                        mail_guard=JournalMailGuard(journal, "sms"))


async def test_an_sms_is_sent_once_with_its_sid(sqlite_url: str) -> None:
    app = create_twilio_emulator({DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN}, status_delay_seconds=0.01)
    journal = Journal(sqlite_url)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=API) as client:
            runner = _runner(client, journal)
            sent = await runner.run([runner.plan(1, _event(1))])
            again = await runner.run([runner.plan(1, _event(1))])  # the same event delivered again
            bad = await runner.run([runner.plan(2, _event(2, phone="07700 900123"))])
            messages = (await client.get("/_emulator/messages")).json()["messages"]
    finally:
        journal.close()
    [message] = messages
    assert (message["to"], message["from"], message["body"]) == ("+447700900123", DEFAULT_FROM, "Your code is 1234")
    assert sent[0].kind == "delivered" and sent[0].detail["twilio_sid"] == message["sid"]
    assert again[0].kind == "delivered" and "not sent again" in again[0].message
    assert bad[0].kind == "rejected" and "E.164" in bad[0].message


async def test_twilios_refusal_and_an_unknown_outcome(sqlite_url: str) -> None:
    app = create_twilio_emulator({DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN}, status_delay_seconds=0.01)
    journal = Journal(sqlite_url)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=API) as client:
            refused = _runner(client, journal, **{"from": "+15551112222"})  # not a number of the account
            not_ours = await refused.run([refused.plan(1, _event(1))])
            runner = _runner(client, journal)
            (await client.post("/_emulator/faults", json={"status": 500, "count": 1, "process": True})
             ).raise_for_status()
            held = await runner.run([runner.plan(2, _event(2))])
            still = await runner.run([runner.plan(2, _event(2))])
            replayed = await runner.run([runner.plan(2, _event(2))], replay=True)
            messages = (await client.get("/_emulator/messages")).json()["messages"]
    finally:
        journal.close()
    assert not_ours[0].kind == "rejected" and "Twilio 21606" in not_ours[0].message
    assert (held[0].kind, still[0].kind, replayed[0].kind) == ("held", "held", "delivered")
    assert len(messages) == 2  # Twilio took the first (its answer was lost), and the replay's
