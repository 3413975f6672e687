"""Segment events → sgbridge → the Dotdigital emulator, over real HTTP: a contact added with its
list and data fields, removed from a list, enrolled in a program; a transactional email and an
SMS sent once, even when the same event is delivered again; a refused event is a dead letter
with Dotdigital's reason. (What Segment's code sends for every action is compared in
``test_oracle_cases.py``.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from segment.analytics.client import Client

from sgbridge.app import build_app
from sgbridge.emulators.dotdigital import create_dotdigital_emulator
from sgbridge.emulators.serving import serve_in_thread
from sgbridge.settings import load_settings

USER, PASSWORD = "apiuser-1@apiconnector.com", "s3cret"
CONFIG = """
[segment_inbound]
write_keys = ["sdk-key"]

[actions.marketing]
destination = "dotdigital"
endpoint = "{url}"
settings = {{ username = "{user}", password = "{password}" }}

[[actions.marketing.subscriptions]]
action = "addContactToList"
mapping = {{ listId = {list_id}, dataFields = {{ FIRSTNAME = {{ "@path" = "$.properties.first_name" }}, \
PLAN_SEATS = {{ "@path" = "$.properties.seats" }} }} }}

[[actions.marketing.subscriptions]]
action = "removeContactFromList"
mapping = {{ listId = {list_id} }}

[[actions.marketing.subscriptions]]
action = "enrolContact"
mapping = {{ programId = "{program}" }}

[[actions.marketing.subscriptions]]
action = "sendTransactionalEmail"
mapping = {{ fromAddress = "shop@example.com", subject = "Your receipt", htmlContent = "<p>Thanks</p>" }}

[[actions.marketing.subscriptions]]
action = "sendSms"
mapping = {{ message = "Your code is 1234" }}
"""


def _get(url: str, what: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{url}/_emulator/{what}").json()
    return list(found[what] if isinstance(found, dict) else found)


@pytest.fixture
def dotdigital() -> Iterator[str]:
    app = create_dotdigital_emulator(users={USER: PASSWORD}, job_delay_seconds=0.0)
    with serve_in_thread(app) as url:
        yield url


def _wait(condition: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)


def test_segment_events_reach_dotdigital(dotdigital: str, tmp_path: Path, sqlite_url: str, monkeypatch: Any) -> None:
    lists = httpx.post(f"{dotdigital}/_emulator/lists", json=[{"name": "Newsletter"}]).json()
    list_id = (lists["lists"] if isinstance(lists, dict) else lists)[0]["id"]
    httpx.post(f"{dotdigital}/_emulator/data-fields", json=[{"name": "FIRSTNAME", "type": "String"},
                                                            {"name": "PLAN_SEATS", "type": "Numeric"}])
    httpx.post(f"{dotdigital}/_emulator/programs", json=[{"id": 77, "name": "Welcome", "status": "Active"}])
    config = tmp_path / "sgbridge.toml"
    config.write_text(CONFIG.format(url=dotdigital, user=USER, password=PASSWORD, list_id=list_id, program=77))
    monkeypatch.setenv("SGBRIDGE_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    app = build_app(load_settings(str(config)))
    with serve_in_thread(app, lifespan="on") as bridge:
        client = Client("sdk-key", host=bridge, sync_mode=True)
        for user, email in (("ada", "ada@example.com"), ("bob", "bob@example.com")):
            client.track(user, "Add or Update Contact", {"email": email, "first_name": f" {user.title()} ",
                                                          "seats": "12"})
        client.track("bob", "Remove Contact from List", {"email": "bob@example.com"})
        client.track("ada", "Enrol Contact to Program", {"email": "ada@example.com"})
        client.track("ada", "Send Transactional Email", {"email": "ada@example.com"}, message_id="receipt-1")
        client.track("ada", "Send Transactional Email", {"email": "ada@example.com"}, message_id="receipt-1")
        client.track("ada", "Send SMS", {"phone": "+44 7700 900123"})
        client.track("cy", "Add or Update Contact", {"email": "cy@example.com", "seats": "many"})  # refused
        client.flush()
        _wait(lambda: len(_get(dotdigital, "sms")) >= 1 and len(_get(dotdigital, "enrolments")) >= 1)
        time.sleep(0.5)  # anything sent twice would have come by now
        contacts = {c["identifiers"]["email"]: c for c in _get(dotdigital, "contacts")}
        emails, sms, enrolments = _get(dotdigital, "emails"), _get(dotdigital, "sms"), _get(dotdigital, "enrolments")
        dead = app.state.bridge.journal.dead_letters("marketing")
    assert sorted(contacts) == ["ada@example.com", "bob@example.com"]
    ada = contacts["ada@example.com"]
    in_lists = {email: [m["id"] for m in c["lists"]] for email, c in contacts.items()}
    assert in_lists == {"ada@example.com": [list_id], "bob@example.com": []}  # bob added, then taken off
    assert ada["dataFields"]["FIRSTNAME"] == "Ada" and float(ada["dataFields"]["PLAN_SEATS"]) == 12
    assert [e["contacts"] for e in enrolments] == [[ada["contactId"]]]
    assert len(emails) == 1 and emails[0]["to"] == ["ada@example.com"]  # one receipt: one messageId
    assert emails[0]["subject"] == "Your receipt" and emails[0]["from"] == "shop@example.com"
    assert [(m["to"], m["message"]) for m in sms] == [("447700900123", "Your code is 1234")]
    assert [d["status"] for d in dead] == ["rejected"]
    assert "Data field PLAN_SEATS value many is not a valid number" in dead[0]["reason"]


@pytest.mark.anyio
async def test_an_sms_whose_outcome_is_unknown_is_held_not_sent_again(sqlite_url: str) -> None:
    """A 500 after Dotdigital took the SMS: held for review; delivered again, still held; sent again
    only on an operator's replay (the outbox of sendEmail, in the journal)."""
    from sgbridge.actions.runner import ActionRunner, check_subscription
    from sgbridge.destinations.actions import JournalMailGuard
    from sgbridge.journal import Journal

    app = create_dotdigital_emulator(users={USER: PASSWORD}, job_delay_seconds=0.0)
    journal = Journal(sqlite_url)
    event = {"type": "track", "event": "Send SMS", "messageId": "otp-1", "userId": "ada",
             "properties": {"phone": "+44 7700 900123"}}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            sub = check_subscription("s", "dotdigital", "sendSms", {"message": "Your code"}, None)
            runner = ActionRunner("dotdigital", {"username": USER, "password": PASSWORD}, [sub], client,
                                  endpoint="http://dd.test", mail_guard=JournalMailGuard(journal, "marketing"))
            (await client.post("http://dd.test/_emulator/faults", json={"status": 500, "count": 1, "process": True,
                                                                       "path": "/v2/sms-messages"})).raise_for_status()
            first = (await runner.run([runner.plan(1, event)]))[0]
            again = (await runner.run([runner.plan(1, event)]))[0]
            held_sms = (await client.get("http://dd.test/_emulator/sms")).json()["sms"]
            replayed = (await runner.run([runner.plan(1, event)], replay=True))[0]
            sms = (await client.get("http://dd.test/_emulator/sms")).json()["sms"]
    finally:
        journal.close()
    assert (first.kind, again.kind) == ("held", "held")
    assert len(held_sms) == 1  # Dotdigital took it; its answer was lost
    assert replayed.kind == "delivered" and len(sms) == 2


@pytest.mark.anyio
async def test_an_audience_exit_takes_the_contact_off_the_list_and_keeps_it() -> None:
    """Dotdigital Audiences: entered → on the audience's list; exited → off it, the contact and its
    other lists kept (Segment's code would delete the contact); an ordinary identify is dropped."""
    from sgbridge.actions.runner import ActionRunner, check_subscription

    app = create_dotdigital_emulator(users={USER: PASSWORD}, job_delay_seconds=0.0)

    def engage(member: bool, n: int) -> dict[str, Any]:
        return {"type": "identify", "userId": "ada", "messageId": f"m{n}", "traits": {
            "email": "ada@example.com", "vip_customers": member}, "context": {"personas": {
                "computation_class": "audience", "computation_key": "vip_customers",
                "external_audience_id": str(audience)}}}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dd.test") as client:
        seeded = (await client.post("/_emulator/lists", json=[{"name": "VIP"}, {"name": "Newsletter"}])).json()
        audience, newsletter = [x["id"] for x in (seeded["lists"] if isinstance(seeded, dict) else seeded)]
        sub = check_subscription("s", "dotdigital-audiences", "syncAudience", None, None)
        runner = ActionRunner("dotdigital-audiences", {"username": USER, "password": PASSWORD}, [sub], client,
                              endpoint="http://dd.test")
        plain = (await runner.run([runner.plan(0, {"type": "identify", "userId": "ada", "messageId": "m0",
                                                   "traits": {"email": "ada@example.com"}})]))[0]
        entered = (await runner.run([runner.plan(1, engage(True, 1))]))[0]
        await client.patch("/contacts/v3/email/ada@example.com", json={"lists": [newsletter]},
                           auth=(USER, PASSWORD))
        on_both = (await client.get("/_emulator/contacts")).json()["contacts"]
        exited = (await runner.run([runner.plan(2, engage(False, 2))]))[0]
        after = (await client.get("/_emulator/contacts")).json()["contacts"]
    assert plain.kind == "dropped"
    assert (entered.kind, exited.kind) == ("delivered", "delivered")
    assert sorted(m["id"] for m in on_both[0]["lists"]) == sorted([audience, newsletter])
    assert [c["identifiers"]["email"] for c in after] == ["ada@example.com"]  # the contact is kept
    assert [m["id"] for m in after[0]["lists"]] == [newsletter]


@pytest.mark.anyio
async def test_a_contacts_actions_in_one_window_run_in_order() -> None:
    """Three changes of one contact in one window: one PATCH, the last one's values winning as they
    would one by one; a 429 on it makes all three wait, none overtakes another."""
    from sgbridge.actions.runner import ActionRunner, check_subscription

    app = create_dotdigital_emulator(users={USER: PASSWORD}, job_delay_seconds=0.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dd.test") as client:
        await client.post("/_emulator/data-fields", json=[{"name": "PLAN", "type": "String"}])
        sub = check_subscription("s", "dotdigital", "addContactToList", {
            "dataFields": {"PLAN": {"@path": "$.properties.plan"}}}, None)
        runner = ActionRunner("dotdigital", {"username": USER, "password": PASSWORD}, [sub], client,
                              endpoint="http://dd.test")
        events = [{"type": "track", "event": "Add or Update Contact", "userId": "ada", "messageId": f"m{n}",
                   "properties": {"email": "ada@example.com", "plan": plan}}
                  for n, plan in enumerate(("free", "pro", "team"))]
        done = await runner.run([runner.plan(n, e) for n, e in enumerate(events)])
        plan = (await client.get("/_emulator/contacts")).json()["contacts"][0]["dataFields"]["PLAN"]
        patches = [r for r in (await client.get("/_emulator/requests")).json()["requests"]
                   if r["method"] == "PATCH"]
        await client.post("/_emulator/faults", json={"status": 429, "count": 1, "retry_after": 1,
                                                     "path": "/contacts/v3"})
        limited = await runner.run([runner.plan(n, e) for n, e in enumerate(reversed(events))])
        after = (await client.get("/_emulator/contacts")).json()["contacts"][0]["dataFields"]["PLAN"]
    assert [r.kind for r in done] == ["delivered"] * 3 and plan == "team"
    assert len(patches) == 1  # coalesced: one PATCH with the last values
    assert [r.kind for r in limited] == ["retry"] * 3  # the first was limited; the others wait behind it
    assert after == "team"  # nothing overtook it


@pytest.mark.anyio
async def test_an_audience_without_a_list_id_gets_a_list_by_its_name() -> None:
    """createAudienceLists (sgbridge's, as for SendGrid Lists): events without the list's id find
    the list named after the audience (audienceName, else the audience key), or make it once."""
    from sgbridge.actions.runner import ActionRunner, check_subscription

    app = create_dotdigital_emulator(users={USER: PASSWORD}, job_delay_seconds=0.0)

    def engage(user: str, member: bool) -> dict[str, Any]:
        return {"type": "identify", "userId": user, "messageId": f"{user}-{member}", "traits": {
            "email": f"{user}@example.com", "vip_customers": member}, "context": {"personas": {
                "computation_class": "audience", "computation_key": "vip_customers"}}}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dd.test") as client:
        sub = check_subscription("s", "dotdigital-audiences", "syncAudience", None, None)
        runner = ActionRunner("dotdigital-audiences", {"username": USER, "password": PASSWORD,
                                                       "createAudienceLists": True}, [sub], client,
                              endpoint="http://dd.test")
        first = await runner.run([runner.plan(1, engage("ada", True)), runner.plan(2, engage("bob", True))])
        left = await runner.run([runner.plan(3, engage("bob", False))])
        lists = (await client.get("/_emulator/lists")).json()["lists"]
        contacts = (await client.get("/_emulator/contacts")).json()["contacts"]
        strict = ActionRunner("dotdigital-audiences", {"username": USER, "password": PASSWORD}, [sub], client,
                              endpoint="http://dd.test")
        refused = await strict.run([strict.plan(4, engage("cy", True))])
    [made] = [x for x in lists if x["name"] == "vip_customers"]
    members = {c["identifiers"]["email"]: [m["id"] for m in c["lists"]] for c in contacts}
    assert [r.kind for r in first + left] == ["delivered"] * 3
    assert members == {"ada@example.com": [made["id"]], "bob@example.com": []}
    assert refused[0].kind == "rejected"  # without the setting, Segment's refusal: no audience id


@pytest.mark.anyio
async def test_dotdigitals_rate_limit_is_waited_out_as_its_headers_say() -> None:
    """An answer with X-RateLimit-Remaining 0 pauses the destination until X-RateLimit-Reset (seconds
    to wait): the next request waits for the window instead of earning a 429."""
    import time

    from sgbridge.actions.runner import ActionRunner, check_subscription

    app = create_dotdigital_emulator(users={USER: PASSWORD}, job_delay_seconds=0.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dd.test") as client:
        for tier in ("low", "medium", "high"):
            await client.post("/_emulator/rate_limits", json={"tier": tier, "limit": 1, "period": 2})
        sub = check_subscription("s", "dotdigital", "addContactToList", None, None)
        runner = ActionRunner("dotdigital", {"username": USER, "password": PASSWORD}, [sub], client,
                              endpoint="http://dd.test")
        events = [{"type": "track", "event": "Add or Update Contact", "userId": u, "messageId": u,
                   "properties": {"email": f"{u}@example.com"}} for u in ("ada", "bob")]
        began = time.monotonic()
        results = await runner.run([runner.plan(n, e) for n, e in enumerate(events)])
        took = time.monotonic() - began
        statuses = [r["status"] for r in (await client.get("/_emulator/requests")).json()["requests"]
                    if r["method"] == "PATCH"]
    assert [r.kind for r in results] == ["delivered", "delivered"]
    assert len(statuses) == 2 and set(statuses) <= {200, 201}  # created or updated; never a 429
    assert took >= 0.5  # the second waited for the window to reset
