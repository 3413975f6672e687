"""Templates 1, 3 and 5 of seed 003 as shipped examples (examples/workflows/), each loaded exactly
as shipped (``load_settings``) and driven on a clock the test moves, with action steps sent for
real to the SendGrid emulator and identify steps to the Segment emulator (ASGITransport), on both
journals. What is checked is what the emulators received or hold: the emails (template, recipient,
dynamic template data, when), the contacts (custom fields) and list memberships, the identify
calls (traits). ``sgbridge workflows test`` is run on each example with its events file."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from sgbridge.cli import main
from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.emulators.sendgrid.state import MarketingList
from sgbridge.journal import Journal
from sgbridge.routing.sendgrid_to_segment import iso_utc_ms
from sgbridge.settings import load_settings
from sgbridge.workflows.engine import LiveActions
from tests.workflows.harness import (
    API_KEY,
    DAY,
    HOUR,
    SENDGRID_HOST,
    World,
    identify,
    live_actions,
    sendgrid_event,
    track,
)

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workflows"

# The SendGrid account the examples are written for (their comments list it).
ORDER_TEMPLATE = "d-5f1e2d3c4b5a49687f6e5d4c3b2a1908"
TRIAL_TEMPLATE = "d-8c7b6a5948374a2b1c0d9e8f7a6b5c4d"
WELCOME_PAID = "d-1b2c3d4e5f60718293a4b5c6d7e8f901"
WELCOME_FREE = "d-2c3d4e5f60718293a4b5c6d7e8f90a12"
WHAT_NEXT = "d-3d4e5f60718293a4b5c6d7e8f90a1b23"
NUDGE = "d-4e5f60718293a4b5c6d7e8f90a1b2c34"
INVITE = "d-5f60718293a4b5c6d7e8f90a1b2c3d45"
TEMPLATES = {ORDER_TEMPLATE: "Order confirmation", TRIAL_TEMPLATE: "Trial welcome", WELCOME_PAID: "Welcome (paid)",
             WELCOME_FREE: "Welcome (free)", WHAT_NEXT: "What next", NUDGE: "Need a hand?", INVITE: "Invite your team"}
PRO = "7c1e5a2b-3d4f-4a6b-8c9d-0e1f2a3b4c5d"
TEAM = "2b8d4f6a-1c3e-4b5d-9f7a-6c8e0a2b4d6f"
FREE = "9e4a2c6b-8d0f-4e1a-b3c5-7d9f1b3e5a7c"
INTEGRATED = "5a3c1e7d-9b2f-4d6e-a8c0-4e6a8c0e2b4d"
LISTS = {PRO: "Onboarding · Pro", TEAM: "Onboarding · Team", FREE: "Onboarding · Free",
         INTEGRATED: "Onboarding · Integrated"}
FIELDS = ("plan", "persona", "signup_source", "onboarding_stage")
WRITE_KEY = "wk-templates"


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class SendGrid:
    """The world of one example, its actions live against the SendGrid emulator."""

    def __init__(self, world: World, api: httpx.AsyncClient) -> None:
        self.w = world
        self.api = api

    async def _get(self, path: str) -> Any:
        response = await self.api.get(path)
        response.raise_for_status()
        return response.json()

    async def mail(self, to: str | None = None) -> list[dict[str, Any]]:
        """The emails SendGrid accepted (to ``to``), oldest first."""
        return list((await self._get("/_emulator/mail" + (f"?to={to}" if to else "")))["messages"])

    async def emails(self, to: str) -> list[tuple[str, float, dict[str, Any]]]:
        """(template, when, dynamic template data) of each email to ``to``."""
        found = []
        for m in await self.mail(to):
            [personalization] = m["request"]["personalizations"]
            assert [r["email"].lower() for r in personalization["to"]] == [to]
            found.append((m["template_id"], _epoch(m["received_at"]), personalization.get("dynamic_template_data")))
        return found

    async def contacts(self) -> dict[str, dict[str, Any]]:
        return {c["email"]: c for c in (await self._get("/_emulator/contacts"))["contacts"]}

    async def members(self) -> dict[str, set[str]]:
        """Each list's members by address."""
        emails = {c["id"]: c["email"] for c in (await self._get("/_emulator/contacts"))["contacts"]}
        return {item["id"]: {emails[cid] for cid in item["contact_ids"]}
                for item in (await self._get("/_emulator/lists"))["lists"]}

    async def stages(self) -> dict[str, str | None]:
        return {email: c["custom_fields"].get("onboarding_stage") for email, c in (await self.contacts()).items()}


@asynccontextmanager
async def sendgrid_example(database_url: str, example: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SendGrid]:
    """The example as shipped (its API key from SENDGRID_API_KEY, as its comment says), on a
    SendGrid emulator holding the account it expects (templates, lists, custom fields) and
    running on the world's clock."""
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    settings = load_settings(EXAMPLES / example)
    journal = Journal(database_url)
    try:
        w = World(journal, settings)
        app = create_sendgrid_emulator([API_KEY], job_delay_seconds=0.0, templates=TEMPLATES, clock=w.clock)
        account = app.state.emulator.state
        for list_id, name in LISTS.items():  # lists made in SendGrid's UI: their ids are the account's
            account.lists[list_id] = MarketingList(list_id, name, w.clock())
        transport = httpx.ASGITransport(app=app)
        async with (httpx.AsyncClient(transport=transport) as client,
                    httpx.AsyncClient(transport=transport, base_url=f"http://{SENDGRID_HOST}") as api):
            for name in FIELDS:
                (await api.post("/v3/marketing/field_definitions", json={"name": name, "field_type": "Text"},
                                headers={"Authorization": f"Bearer {API_KEY}"})).raise_for_status()
            live_actions(w, client)
            yield SendGrid(w, api)
    finally:
        journal.close()


def _states(w: World) -> dict[str, tuple[str, str | None]]:
    return {f"{r.workflow}/{r.run_key}#{r.trigger_seq}": (r.state, r.detail) for r in w.all_runs()}


# -- template 1: Segment event → transactional email ---------------------------------------------
async def test_order_and_trial_emails_use_their_templates_and_the_profile(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with sendgrid_example(database_url, "order-emails.toml", monkeypatch) as sg:
        w = sg.w
        await w.send(identify("u-ada", email="Ada@Example.com", first_name="Ada"),
                     identify("u-bob", email="bob@example.com", first_name="Bob", company="Bobco"))
        # two orders in one window: an email each (reentry = "always")
        await w.send(track("u-ada", "Order Placed", order_id="o-1", total=42.5, currency="EUR",
                           products=[{"sku": "tee-42", "name": "T-shirt"}]),
                     track("u-ada", "Order Placed", order_id="o-2", total=9, currency="EUR"))
        guest = {"type": "track", "anonymousId": "anon-guest", "event": "Order Placed",
                 "properties": {"order_id": "o-3", "total": 15, "email": "guest@example.com"}}
        await w.send(guest, track("u-nobody", "Order Placed", order_id="o-4"))
        await w.run()
        await w.send(track("u-bob", "Trial Started", plan="pro", trial_ends_at="2027-01-29T00:00:00Z"))
        await w.later(HOUR)
        await w.send(track("u-bob", "Trial Started", plan="pro"))  # again: no second welcome (reentry = "never")
        await w.later(HOUR)
        ada, guest_mail, bob, every = (await sg.mail("ada@example.com"), await sg.emails("guest@example.com"),
                                       await sg.emails("bob@example.com"), await sg.mail())
        nobody = w.only_run("order-confirmation", "userId:u-nobody")
        runs = w.all_runs()

    # the profile's address (as identified), the profile's name, the event's order
    assert sorted((m["template_id"], m["request"]["personalizations"][0]["dynamic_template_data"]["order_id"])
                  for m in ada) == [(ORDER_TEMPLATE, "o-1"), (ORDER_TEMPLATE, "o-2")]
    first = next(m for m in ada if m["request"]["personalizations"][0]["dynamic_template_data"]["order_id"] == "o-1")
    assert first["request"]["personalizations"][0]["to"] == [{"email": "Ada@Example.com", "name": "Ada"}]
    assert first["request"]["personalizations"][0]["dynamic_template_data"] == {
        "first_name": "Ada", "order_id": "o-1", "total": 42.5, "currency": "EUR",
        "products": [{"sku": "tee-42", "name": "T-shirt"}]}
    assert first["from"] == {"email": "orders@example.com", "name": "Example Shop"}
    assert first["categories"] == ["order-confirmation"]
    assert first["recipients"][0]["custom_args"]["segment_user_id"] == "u-ada"  # its events come back as the user's
    # a guest checkout: the address in the event, no name
    assert [(t, d) for t, _, d in guest_mail] == [(ORDER_TEMPLATE, {"order_id": "o-3", "total": 15})]
    # no address anywhere: the run ends with the reason, SendGrid is not asked
    assert nobody.state == "exited" and "no email address" in str(nobody.detail)
    # the trial: its own template, the profile's traits, once
    assert [(t, d) for t, _, d in bob] == [(TRIAL_TEMPLATE, {"first_name": "Bob", "company": "Bobco", "plan": "pro",
                                                             "trial_ends_at": "2027-01-29T00:00:00Z"})]
    assert len(every) == 4
    assert sorted(r.state for r in runs) == ["completed"] * 4 + ["exited"]  # the second trial started no run


# -- template 3: engagement → Segment, with the engagement traits -------------------------------
@asynccontextmanager
async def segment_example(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[
        tuple[World, httpx.AsyncClient]]:
    """engagement-traits.toml as shipped, its identify steps sent with SEGMENT_WRITE_KEY to
    SEGMENT_ENDPOINT (the Segment emulator), as ``serve`` and ``workflows test`` send them."""
    monkeypatch.setenv("SEGMENT_WRITE_KEY", WRITE_KEY)
    monkeypatch.setenv("SEGMENT_ENDPOINT", "http://segment.test")
    settings = load_settings(EXAMPLES / "engagement-traits.toml")
    journal = Journal(database_url)
    segment = create_segment_emulator(write_keys=[WRITE_KEY])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=segment),
                                     base_url="http://segment.test") as client:
            w = World(journal, settings)
            port = LiveActions(w.workflows, settings.actions, journal, client, segment_url=settings.segment.base_url(),
                               write_key=settings.write_key_for("default"))
            w.port = w.engine.actions = port
            yield w, client
    finally:
        journal.close()


async def _identifies(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/_emulator/messages", params={"type": "identify"})
    response.raise_for_status()
    return list(response.json()["messages"])


def _anonymous_id(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


async def test_engagement_traits_reach_segment_as_identify_calls(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with segment_example(database_url, monkeypatch) as (w, segment):
        t0 = w.clock()
        # Ada: her email went out with segment_user_id; delivered (no run), opened, clicked
        await w.send(sendgrid_event("delivered", "ada@example.com", t0, user="u-ada"))
        await w.run()
        delivered_only = await _identifies(segment)
        await w.send(sendgrid_event("open", "ada@example.com", t0 + 60, user="u-ada"))
        await w.later(60)
        await w.send(sendgrid_event("click", "ada@example.com", t0 + 120, user="u-ada", url="https://example.com/p"))
        await w.later(60)
        # Bob: a Marketing Campaigns email (no segment_user_id), then one of ours, both opened:
        # one profile by address, two opens; a machine open changes nothing and starts no run
        await w.send(sendgrid_event("open", "Bob@Example.com", t0 + 180))
        await w.later(60)
        await w.send(sendgrid_event("open", "bob@example.com", t0 + 240, user="u-bob", sg_machine_open=True))
        await w.later(60)
        await w.send(sendgrid_event("open", "bob@example.com", t0 + 300, user="u-bob"))
        await w.later(60)
        # Cy: bounced, then two events in one window: a run each, both send the latest traits
        await w.send(sendgrid_event("bounce", "cy@example.com", t0 + 360, type="bounce", reason="550 no such user"))
        await w.later(60)
        await w.send(sendgrid_event("spamreport", "cy@example.com", t0 + 420),
                     sendgrid_event("unsubscribe", "cy@example.com", t0 + 421))
        await w.later(60)
        sent = await _identifies(segment)
        runs = w.all_runs()

    assert delivered_only == []
    assert all(r.state == "completed" for r in runs) and len(runs) == len(sent) == 7
    ada = [m for m in sent if m.get("userId") == "u-ada"]
    assert [m["traits"] for m in ada] == [
        {"email": "ada@example.com", "last_email_delivered_at": iso_utc_ms(t0), "emails_delivered": 1,
         "last_email_opened_at": iso_utc_ms(t0 + 60), "emails_opened": 1},
        {"email": "ada@example.com", "last_email_delivered_at": iso_utc_ms(t0), "emails_delivered": 1,
         "last_email_opened_at": iso_utc_ms(t0 + 60), "emails_opened": 1,
         "last_email_clicked_at": iso_utc_ms(t0 + 120), "emails_clicked": 1}]
    assert ada[0]["anonymousId"] == _anonymous_id("ada@example.com")  # the events' own, too
    bob = [m for m in sent if m["traits"]["email"] == "bob@example.com"]
    assert [(m.get("userId"), m["anonymousId"], m["traits"]) for m in bob] == [
        (None, _anonymous_id("bob@example.com"),
         {"email": "bob@example.com", "last_email_opened_at": iso_utc_ms(t0 + 180), "emails_opened": 1}),
        ("u-bob", _anonymous_id("bob@example.com"),
         {"email": "bob@example.com", "last_email_opened_at": iso_utc_ms(t0 + 300), "emails_opened": 2})]
    cy = [m for m in sent if m["traits"]["email"] == "cy@example.com"]
    assert "userId" not in cy[0] and cy[0]["anonymousId"] == _anonymous_id("cy@example.com")
    assert cy[0]["traits"] == {"email": "cy@example.com", "last_email_bounced_at": iso_utc_ms(t0 + 360),
                               "emails_bounced": 1, "email_bounced": True}
    latest = {"email": "cy@example.com", "last_email_bounced_at": iso_utc_ms(t0 + 360), "emails_bounced": 1,
              "email_bounced": True, "last_spam_report_at": iso_utc_ms(t0 + 420), "spam_reported": True,
              "unsubscribed_at": iso_utc_ms(t0 + 421), "unsubscribed": True}
    assert [m["traits"] for m in cy[1:]] == [latest, latest]
    assert len({m["messageId"] for m in sent}) == 7
    assert all(m["context"]["library"]["name"] == "sgbridge-workflows" for m in sent)


# -- template 5: onboarding through SendGrid's Automations ---------------------------------------
def _signed_up(user: str, plan: str | None, persona: str, source: str) -> dict[str, Any]:
    props = {"persona": persona, "signup_source": source} | ({"plan": plan} if plan else {})
    return track(user, "User Signed Up", **props)


async def test_onboarding_enrols_by_plan_advances_and_exits(database_url: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    async with sendgrid_example(database_url, "onboarding-automations.toml", monkeypatch) as sg:
        w = sg.w
        people = {"ada": "pro", "bob": "team", "cy": None, "dee": "free"}
        await w.send(*(identify(f"u-{p}", email=f"{p}@example.com", first_name=p.title()) for p in people))
        await w.send(*(_signed_up(f"u-{p}", plan, "developer", f"src-{p}") for p, plan in people.items()))
        await w.run()
        enrolled, fields = await sg.members(), await sg.contacts()

        await w.later(DAY)
        await w.send(track("u-ada", "Integration Connected", integration="github"),
                     track("u-bob", "Subscription Cancelled", reason="price"))
        await w.later(DAY)
        await w.send(track("u-dee", "Integration Connected", integration="slack"))
        await w.run()
        stage_1_done, stages_1 = await sg.members(), await sg.stages()
        bob = w.only_run(key="userId:u-bob")

        await w.later(15 * DAY)
        await w.send(track("u-ada", "Subscription Cancelled", reason="switched"))
        await w.run()
        ada_gone, stages_2 = await sg.members(), await sg.stages()

        await w.later(30 * DAY)  # cy's stage 1 (30 days) and dee's stage 2 (30 days) time out
        final, stages_3 = await sg.members(), await sg.stages()
        runs = {r.run_key.removeprefix("userId:u-"): r for r in w.all_runs()}

    # enrolment: each plan's entry list (no plan: Free), with the onboarding fields
    assert enrolled == {PRO: {"ada@example.com"}, TEAM: {"bob@example.com"},
                        FREE: {"cy@example.com", "dee@example.com"}, INTEGRATED: set()}
    assert {e: c["custom_fields"] for e, c in fields.items()} == {
        f"{p}@example.com": {"plan": plan or "free", "persona": "developer", "signup_source": f"src-{p}",
                             "onboarding_stage": "signed_up"} for p, plan in people.items()}
    assert fields["ada@example.com"]["first_name"] == "Ada"
    # advance (ada, dee): off the plan's list, onto stage 2's; exit in stage 1 (bob): off his list
    assert stage_1_done == {PRO: set(), TEAM: set(), FREE: {"cy@example.com"},
                            INTEGRATED: {"ada@example.com", "dee@example.com"}}
    assert stages_1 == {"ada@example.com": "integrated", "bob@example.com": "cancelled",
                        "cy@example.com": "signed_up", "dee@example.com": "integrated"}
    assert bob.state == "exited" and "cancelled" in str(bob.detail)
    # a cancellation in stage 2 (ada): off stage 2's list
    assert ada_gone[INTEGRATED] == {"dee@example.com"} and stages_2["ada@example.com"] == "cancelled"
    # nothing within 30 days: cy's run ends and leaves the list alone; dee finished stage 2
    assert final == {PRO: set(), TEAM: set(), FREE: {"cy@example.com"}, INTEGRATED: {"dee@example.com"}}
    assert stages_3 == {**stages_2, "dee@example.com": "onboarded"}
    assert {p: r.state for p, r in runs.items()} == {"ada": "completed", "bob": "exited", "cy": "exited",
                                                      "dee": "completed"}
    assert "30 days" in str(runs["cy"].detail)


# -- template 5 without Automations: the sequence as an sgbridge flow ---------------------------
async def test_onboarding_flow_emails_each_branch(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with sendgrid_example(database_url, "onboarding-flow.toml", monkeypatch) as sg:
        w = sg.w
        t0 = w.clock()
        people = {"ada": "pro", "bob": "free", "cy": "team", "dee": "free"}
        await w.send(*(identify(f"u-{p}", email=f"{p}@example.com", first_name=p.title()) for p in people))
        await w.send(*(_signed_up(f"u-{p}", plan, "founder", "ads") for p, plan in people.items()))
        await w.later(DAY)
        await w.send(track("u-ada", "Integration Connected", integration="github"),  # within 3 days
                     track("u-cy", "Subscription Cancelled"))  # ends cy's run: nothing more
        await w.later(3 * DAY)  # day 4: bob and dee were nudged on day 3
        await w.send(track("u-bob", "Integration Connected", integration="slack"))  # day 4: within 4 more days
        await w.later(10 * DAY)  # dee: not connected 7 days after sign-up
        emails = {p: await sg.emails(f"{p}@example.com") for p in people}
        runs = {r.run_key.removeprefix("userId:u-"): r for r in w.all_runs()}
        connected_ada, connected_bob = t0 + DAY, t0 + 4 * DAY

    assert [(t, at - t0, d) for t, at, d in emails["ada"]] == [
        (WELCOME_PAID, 0, {"first_name": "Ada", "plan": "pro", "persona": "founder", "signup_source": "ads"}),
        (WHAT_NEXT, DAY, {"first_name": "Ada", "integration": "github"}),
        (INVITE, DAY + 2 * DAY, {"first_name": "Ada", "plan": "pro"})]
    assert [(t, at - t0, d) for t, at, d in emails["bob"]] == [
        (WELCOME_FREE, 0, {"first_name": "Bob", "persona": "founder", "signup_source": "ads"}),
        (NUDGE, 3 * DAY, {"first_name": "Bob", "persona": "founder"}),
        (WHAT_NEXT, 4 * DAY, {"first_name": "Bob", "integration": "slack"}),
        (INVITE, 6 * DAY, {"first_name": "Bob", "plan": "free"})]
    assert [t for t, _, _ in emails["cy"]] == [WELCOME_PAID]
    assert [(t, at - t0) for t, at, _ in emails["dee"]] == [(WELCOME_FREE, 0), (NUDGE, 3 * DAY)]
    assert (runs["ada"].state, runs["ada"].updated_at) == ("completed", connected_ada + 2 * DAY)
    assert (runs["bob"].state, runs["bob"].updated_at) == ("completed", connected_bob + 2 * DAY)
    assert runs["cy"].state == "exited" and "Subscription Cancelled" in str(runs["cy"].detail)
    assert runs["dee"].state == "exited" and "7 days" in str(runs["dee"].detail)
    assert runs["dee"].updated_at == t0 + 7 * DAY


# -- sgbridge workflows test on each example and its events file ---------------------------------
def _cli_report(example: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    result = CliRunner().invoke(main, ["workflows", "test", "--config", str(EXAMPLES / f"{example}.toml"),
                                       "--events", str(EXAMPLES / f"{example}.events.json")])
    assert result.exit_code == 0, (result.output, result.exception)
    report = orjson.loads(result.stdout)
    assert report["sent"] is False
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in report["runs"]:
        runs.setdefault((run["workflow"], run["key"]), []).append(run)
    return runs


def _outline(runs: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    return [(r["state"], [a["step"] for a in r["actions"]]) for r in runs]


@pytest.mark.parametrize(("example", "expected"), [
    ("order-emails", {
        ("order-confirmation", "userId:u-ada"): [("completed", ["confirmation"]), ("completed", ["confirmation"])],
        ("order-confirmation", "anonymousId:anon-guest"): [("completed", ["confirmation"])],
        ("order-confirmation", "userId:u-nobody"): [("exited", [])],
        ("trial-welcome", "userId:u-bob"): [("completed", ["welcome"])]}),
    ("engagement-traits", {
        ("engagement-traits", "email:ada@example.com"): [("completed", ["engagement"])] * 2,
        ("engagement-traits", "email:bob@example.com"): [("completed", ["engagement"])] * 2,
        ("engagement-traits", "email:cy@example.com"): [("completed", ["engagement"])]}),
    ("onboarding-automations", {
        ("onboarding-automations", "userId:u-ada"): [
            ("completed", ["contact", "enrol_pro", "leave_pro", "advance", "leave_stage_2", "stage_2_cancelled"])],
        ("onboarding-automations", "userId:u-bob"): [
            ("exited", ["contact", "enrol_team", "leave_team", "stage_cancelled"])],
        ("onboarding-automations", "userId:u-cy"): [("exited", ["contact", "enrol_free"])]}),
    ("onboarding-flow", {
        ("onboarding-flow", "userId:u-ada"): [("completed", ["welcome_paid", "what_next", "invite_team"])],
        ("onboarding-flow", "userId:u-bob"): [("completed", ["welcome_free", "nudge", "what_next_late",
                                                             "invite_team"])],
        ("onboarding-flow", "userId:u-cy"): [("exited", ["welcome_paid"])],
        ("onboarding-flow", "userId:u-dee"): [("exited", ["welcome_free", "nudge"])]}),
])
def test_workflows_test_on_each_example(example: str, expected: dict[tuple[str, str], list[Any]]) -> None:
    runs = _cli_report(example)
    assert {key: _outline(found) for key, found in runs.items()} == expected


def test_workflows_test_shows_the_payloads_of_the_examples() -> None:
    """What the events files show (times are the events' own)."""
    orders = _cli_report("order-emails")
    [welcome] = orders[("trial-welcome", "userId:u-bob")][0]["actions"]
    assert welcome["payload"]["template_id"] == TRIAL_TEMPLATE and welcome["at"] == "2026-12-01T11:00:00.000Z"
    assert welcome["payload"]["to"] == {"email": "bob@example.com", "name": "Bob"}
    assert welcome["payload"]["dynamic_template_data"]["company"] == "Bobco"
    [nobody] = orders[("order-confirmation", "userId:u-nobody")]
    assert "no email address" in nobody["detail"]

    engagement = _cli_report("engagement-traits")
    cy = engagement[("engagement-traits", "email:cy@example.com")][0]["actions"][0]["payload"]
    assert cy["anonymousId"] == _anonymous_id("cy@example.com") and "userId" not in cy
    assert cy["traits"]["email_bounced"] is True and cy["traits"]["emails_bounced"] == 1
    bob = [r["actions"][0]["payload"] for r in engagement[("engagement-traits", "email:bob@example.com")]]
    assert [(p.get("userId"), p["traits"]["emails_opened"]) for p in bob] == [(None, 1), ("u-bob", 2)]

    onboarding = _cli_report("onboarding-automations")
    [ada] = onboarding[("onboarding-automations", "userId:u-ada")]
    payloads = {a["step"]: a["payload"] for a in ada["actions"]}
    assert payloads["contact"]["customFields"] == {"plan": "pro", "persona": "developer",
                                                   "signup_source": "google-ads", "onboarding_stage": "signed_up"}
    assert payloads["enrol_pro"]["list_id"] == payloads["leave_pro"]["list_id"] == PRO
    assert payloads["advance"]["list_ids"] == [INTEGRATED]
    [cy] = onboarding[("onboarding-automations", "userId:u-cy")]
    assert cy["ended_at"] == "2026-12-31T09:20:01.000Z"  # 30 days after the sign-up

    flow = _cli_report("onboarding-flow")
    [bob_flow] = flow[("onboarding-flow", "userId:u-bob")]
    assert [(a["step"], a["at"]) for a in bob_flow["actions"]] == [
        ("welcome_free", "2026-12-01T09:10:01.000Z"), ("nudge", "2026-12-04T09:10:01.000Z"),
        ("what_next_late", "2026-12-05T12:00:00.000Z"), ("invite_team", "2026-12-07T12:00:00.000Z")]
    assert bob_flow["actions"][2]["payload"]["dynamic_template_data"]["integration"] == "slack"
