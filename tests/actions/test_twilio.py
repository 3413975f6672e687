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


def test_status_callbacks_come_back_as_the_users_events(tmp_path: Any, sqlite_url: str, monkeypatch: Any) -> None:
    """Segment event → sgbridge → the Twilio emulator, which posts its signed status callbacks to
    sgbridge's /webhooks/twilio: they are stored once each, as track calls of the user the SMS
    was for; an unsigned or wrongly signed callback is refused."""
    import time

    from sgbridge.app import build_app
    from sgbridge.emulators.serving import serve_in_thread
    from sgbridge.inbound.twilio import twilio_signature
    from sgbridge.settings import load_settings

    emulator = create_twilio_emulator({DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN}, status_delay_seconds=0.05)
    monkeypatch.setenv("SGBRIDGE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN)  # signs the callbacks, and the API calls
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", DEFAULT_ACCOUNT_SID)
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    with serve_in_thread(emulator) as twilio_url:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        bridge_url = f"http://127.0.0.1:{port}"
        config = tmp_path / "sgbridge.toml"
        config.write_text(f'''
[segment_inbound]
write_keys = ["wk"]

[actions.sms]
destination = "twilio"
endpoint = "{twilio_url}"

[[actions.sms.subscriptions]]
action = "sendSms"
trigger = 'event = "Code Requested"'
mapping = {{ from = "{DEFAULT_FROM}", body = "Your code is 1234", statusCallback = "{bridge_url}/webhooks/twilio" }}
''')
        app = build_app(load_settings(str(config)))
        with serve_in_thread(app, lifespan="on", port=port) as url:
            posted = httpx.post(f"{url}/v1/track", auth=("wk", ""), json={
                "userId": "ada", "event": "Code Requested", "messageId": "otp-9",
                "properties": {"phone": "+447700900123"}})
            deadline = time.monotonic() + 20
            stored: list[Any] = []
            while time.monotonic() < deadline:
                stored = app.state.bridge.journal.run_sync(lambda conn: conn.execute(
                    "SELECT body FROM events WHERE source = 'twilio:status' ORDER BY seq").fetchall())
                if any(b"SMS Delivered" in bytes(r[0]) for r in stored):
                    break
                time.sleep(0.1)
            callbacks = httpx.get(f"{twilio_url}/_emulator/callbacks").json()["callbacks"]
            forged = httpx.post(f"{url}/webhooks/twilio", data={"MessageSid": "SMx", "MessageStatus": "delivered"},
                                headers={"X-Twilio-Signature": twilio_signature(f"{url}/webhooks/twilio", {
                                    "MessageSid": "SMx", "MessageStatus": "delivered"}, "not-the-token")})
            again = httpx.post(callbacks[-1]["url"], data=callbacks[-1]["params"],
                               headers={"X-Twilio-Signature": callbacks[-1]["signature"]})
            count = app.state.bridge.journal.run_sync(lambda conn: conn.execute(
                "SELECT COUNT(*) FROM events WHERE source = 'twilio:status'").fetchone()[0])
    import orjson

    events = [orjson.loads(bytes(r[0])) for r in stored]
    assert posted.status_code == 200, posted.text
    assert [e["event"] for e in events] == ["SMS Sent", "SMS Delivered"]
    assert {e["userId"] for e in events} == {"ada"}
    assert events[-1]["properties"]["sent_for_message_id"] == "otp-9"
    assert events[-1]["properties"]["to"] == "+447700900123"
    assert forged.status_code == 401
    assert again.status_code == 200 and again.json()["duplicates"] == 1 and count == len(events)
