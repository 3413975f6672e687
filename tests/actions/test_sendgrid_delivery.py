"""Segment events → sgbridge → the SendGrid emulator, through the delivery engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.actions.harness import actions_bridge, write_config

pytestmark = pytest.mark.anyio

CONTACTS = """
[[actions.sendgrid.subscriptions]]
action = "updateUserProfile"
trigger = 'type = "identify"'

[[actions.sendgrid.subscriptions]]
action = "addToList"
trigger = 'type = "track" and event = "Joined Newsletter"'
mapping = { list_id = { "@path" = "$.properties.list_id" } }

[[actions.sendgrid.subscriptions]]
action = "removeFromList"
trigger = 'type = "track" and event = "Left Newsletter"'
mapping = { list_id = { "@path" = "$.properties.list_id" } }
"""

MAIL = """
[[actions.sendgrid.subscriptions]]
action = "sendEmail"
trigger = 'event = "Order Completed"'
mapping = { from = { email = "shop@example.com" }, template_id = "d-5f1e0c3a2b8d4e6f9a7b1c2d3e4f5a6b", \
to = { email = { "@path" = "$.properties.email" } }, dynamic_template_data = { "@path" = "$.properties" } }
"""


def identify(n: int, email: str, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": f"u{n}", "messageId": f"id-{n}-{email}",
            "traits": {"email": email, **traits}}


def track(n: int, user: str, event: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, "messageId": f"t-{n}", "properties": properties}


async def create_list(h: Any, name: str) -> str:
    response = await h.sendgrid.post("/v3/marketing/lists", json={"name": name},
                                      headers={"Authorization": "Bearer SG.test-key"})
    assert response.status_code == 201
    return str(response.json()["id"])


async def test_identifies_become_contacts_in_few_puts(tmp_path: Path, sqlite_url: str, monkeypatch: Any) -> None:
    config = write_config(tmp_path / "c.toml", CONTACTS)
    async with actions_bridge(config, sqlite_url, monkeypatch) as h:
        events = [identify(i, f"user{i}@example.com", first_name=f"F{i}") for i in range(200)]
        events.append(identify(999, "user5@example.com", first_name="Changed", last_name="Last"))
        await h.send(*events)
        await h.settled(len(events))
        contacts = {c["email"]: c for c in (await h.emulator("contacts"))["contacts"]}
        puts = (await h.sendgrid.get("/_emulator/requests", params={"method": "PUT"})).json()["requests"]
    assert len(contacts) == 200
    assert contacts["user5@example.com"]["first_name"] == "Changed"  # the later update won
    assert contacts["user5@example.com"]["last_name"] == "Last"
    assert contacts["user7@example.com"]["first_name"] == "F7"
    assert len(puts) == 1  # 201 updates of 200 contacts, coalesced into one request


async def test_invalid_email_is_rejected_alone(tmp_path: Path, sqlite_url: str, monkeypatch: Any) -> None:
    config = write_config(tmp_path / "c.toml", CONTACTS)
    async with actions_bridge(config, sqlite_url, monkeypatch) as h:
        await h.send(identify(1, "good@example.com"), identify(2, "not-an-email"), identify(3, "also@example.com"))
        await h.settled(3)
        contacts = sorted(c["email"] for c in (await h.emulator("contacts"))["contacts"])
        dead = h.app.state.bridge.journal.dead_letters("sendgrid")
    assert contacts == ["also@example.com", "good@example.com"]
    assert len(dead) == 1
    assert dead[0]["status"] == "rejected" and "email 'not-an-email' is not valid" in dead[0]["reason"]


@pytest.mark.parametrize("window", [30_000, 3])  # one window, or many in flight at once
@pytest.mark.parametrize("last", ["Joined Newsletter", "Left Newsletter"])
async def test_add_remove_storm_ends_in_the_last_state(tmp_path: Path, sqlite_url: str, monkeypatch: Any,
                                                       last: str, window: int) -> None:
    config = write_config(tmp_path / "c.toml", CONTACTS, f"window_events = {window}\nwindows_in_flight = 4")
    # Slow import jobs keep several windows in flight at once.
    async with actions_bridge(config, sqlite_url, monkeypatch, job_delay=0.3) as h:
        list_id = await create_list(h, "newsletter")
        await h.send(identify(0, "storm@example.com"))
        await h.settled(1)
        names = ["Joined Newsletter", "Left Newsletter"] * 5
        names += ["Joined Newsletter"] if last == "Joined Newsletter" else []
        storm = [track(i, "u0", name, list_id=list_id, email="storm@example.com") for i, name in enumerate(names)]
        # Other people's updates in between, so windows hold more than the storm.
        storm = [e for i, event in enumerate(storm) for e in (event, identify(100 + i, f"other{i}@example.com"))]
        await h.send(*storm)
        await h.settled(1 + len(storm))
        await h.sendgrid.post("/_emulator/jobs/run")  # list removals finish asynchronously, as on SendGrid
        lists = {item["id"]: item for item in (await h.emulator("lists"))["lists"]}
        contacts = {c["email"] for c in (await h.emulator("contacts"))["contacts"]}
    members = lists[list_id]["contact_ids"]
    assert (len(members) == 1) is (last == "Joined Newsletter")
    assert len(contacts) == 1 + len(names)


async def test_email_sent_once_and_unknown_outcome_held(tmp_path: Path, sqlite_url: str, monkeypatch: Any) -> None:
    config = write_config(tmp_path / "c.toml", MAIL)
    async with actions_bridge(config, sqlite_url, monkeypatch) as h:
        order = track(1, "buyer", "Order Completed", email="buyer@example.com", total=12)
        await h.send(order)
        await h.settled(1)
        # The same messageId again (a client retry): deduplicated at the door, no second email.
        await h.send(order)
        # The next send is accepted by SendGrid, but the answer is lost: sgbridge must not send it again.
        await h.sendgrid.post("/_emulator/faults", json={"status": 500, "count": 1, "process": True})
        await h.send(track(2, "buyer", "Order Completed", email="buyer@example.com", total=30))
        await h.settled(2)
        mail = (await h.emulator("mail"))["messages"]
        dead = h.app.state.bridge.journal.dead_letters("sendgrid")
    args = [m["request"]["personalizations"][0]["custom_args"] for m in mail]
    assert [a["segment_message_id"] for a in args] == ["t-1", "t-2"]  # each once, t-2 by the lost attempt
    assert all(a["segment_user_id"] == "buyer" for a in args)
    assert mail[0]["request"]["personalizations"][0]["dynamic_template_data"]["total"] == 12
    assert [d["status"] for d in dead] == ["held"]
    assert "unknown" in dead[0]["reason"]


async def test_rate_limit_is_waited_out(tmp_path: Path, sqlite_url: str, monkeypatch: Any) -> None:
    config = write_config(tmp_path / "c.toml", CONTACTS)
    async with actions_bridge(config, sqlite_url, monkeypatch) as h:
        await h.sendgrid.post("/_emulator/faults", json={"status": 429, "count": 2, "retry_after": 0.2,
                                                         "path": "/v3/marketing/contacts"})
        await h.send(identify(1, "patient@example.com"))
        await h.settled(1)
        contacts = (await h.emulator("contacts"))["contacts"]
        statuses = [r["status"] for r in (await h.sendgrid.get("/_emulator/requests",
                                                               params={"method": "PUT"})).json()["requests"]]
    assert [c["email"] for c in contacts] == ["patient@example.com"]
    assert statuses == [429, 429, 202]


async def test_events_show_follows_a_segment_event(tmp_path: Path, sqlite_url: str, monkeypatch: Any) -> None:
    import orjson
    from click.testing import CliRunner

    from sgbridge.cli import main

    config = write_config(tmp_path / "c.toml", CONTACTS)
    async with actions_bridge(config, sqlite_url, monkeypatch) as h:
        await h.send(identify(1, "shown@example.com"), identify(2, "broken-address"))
        await h.settled(2)
    runner = CliRunner()
    good = runner.invoke(main, ["events", "show", "--config", config, "id-1-shown@example.com"])
    bad = runner.invoke(main, ["events", "show", "--config", config, "id-2-broken-address"])
    assert good.exit_code == 0 and bad.exit_code == 0, (good.output, bad.output)
    shown, refused = orjson.loads(good.output), orjson.loads(bad.output)
    assert shown["destinations"]["segment"]["outcome"] == "not_consumed"
    assert shown["destinations"]["sendgrid"]["outcome"] == "delivered"
    assert [a["detail"].split()[0] for a in shown["destinations"]["sendgrid"]["attempts"]][:1] == ["PUT"]
    put = next(a["detail"] for a in shown["destinations"]["sendgrid"]["attempts"] if a["outcome"] == "delivered")
    assert "shown@example.com" in put.split("\nresponse: ")[0]  # the start of the request's body
    assert "job_id" in put.split("\nresponse: ")[1]  # and of SendGrid's answer
    assert "Bearer" not in put and "SG." not in put  # headers, with the key, are not kept
    assert refused["destinations"]["sendgrid"]["outcome"] == "rejected"
    assert "is not valid" in refused["destinations"]["sendgrid"]["reason"]


async def test_later_window_waits_only_for_the_same_contact(tmp_path: Path, sqlite_url: str,
                                                            monkeypatch: Any) -> None:
    """Windows of one event, four in flight: a slow add to a list holds back the same contact's
    removal in a later window, not an unrelated contact."""
    config = write_config(tmp_path / "c.toml", CONTACTS, "window_events = 1\nwindows_in_flight = 4")
    async with actions_bridge(config, sqlite_url, monkeypatch) as h:
        list_id = await create_list(h, "newsletter")
        await h.send(identify(0, "slow@example.com"))
        await h.settled(1)
        # The next contacts PUT (the add below) answers only after 0.8 s.
        await h.sendgrid.post("/_emulator/faults", json={"delay": 0.8, "count": 1, "path": "/v3/marketing/contacts"})
        await h.send(track(1, "u0", "Joined Newsletter", list_id=list_id, email="slow@example.com"),
                     track(2, "u0", "Left Newsletter", list_id=list_id, email="slow@example.com"),
                     identify(3, "unrelated@example.com"))
        await h.settled(4)
        await h.sendgrid.post("/_emulator/jobs/run")
        lists = {item["id"]: item for item in (await h.emulator("lists"))["lists"]}
        log = (await h.sendgrid.get("/_emulator/requests")).json()["requests"]
    assert lists[list_id]["contact_ids"] == []  # the removal came after the (slow) add
    puts = [r for r in log if r["method"] == "PUT"]
    search = next(r["received_at"] for r in log if r["path"] == "/v3/marketing/contacts/search")
    slow_add = next(r for r in puts if r["json"].get("list_ids") == [list_id])
    unrelated = next(r for r in puts if r["json"]["contacts"][0]["email"] == "unrelated@example.com")
    assert slow_add["fault"] is not None  # the delayed request was the add
    assert unrelated["received_at"] < slow_add["received_at"] + 0.5  # it did not wait for the slow add
    assert search > slow_add["received_at"] + 0.7  # the removal did
