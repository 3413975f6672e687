"""The workflow engine on both journals with a clock the test moves: each step kind and branch,
exits, reentry, trigger counts, lateness, events that arrive while a run is taken up, and a
window the intake applies twice. Actions are simulated here (the payload each would send);
tests/workflows/test_engine_actions.py sends them to the SendGrid emulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workflows.harness import DAY, HOUR, START, email_step, identify, iso, sendgrid_event, track, world

pytestmark = pytest.mark.anyio

CART = 'event = "Cart Abandoned"'
ORDER = 'event = "Order Completed"'
CONNECTED = 'event = "Integration Connected"'


# -- wait -------------------------------------------------------------------------------
async def test_wait_a_duration_fires_at_its_time(database_url: str) -> None:
    with world(database_url, [{"name": "w", "trigger": CART, "steps": [{"wait": "2h"}, email_step()]}]) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Cart Abandoned"))
        await w.run()
        run = w.only_run()
        assert (run.state, run.position, run.due_at) == ("waiting", "0", START + 2 * HOUR)
        await w.later(2 * HOUR - 1)
        assert w.sent() == [] and w.only_run().state == "waiting"
        await w.later(1)
        assert w.only_run().state == "completed"
        steps = w.steps(run)
    assert [(a["at"], a["payload"]["to"]) for a in w.sent()] == [(START + 2 * HOUR, {"email": "a@example.com"})]
    assert steps["0"]["state"] == "done" and steps["0"]["output"] == {"late_seconds": 0.0}
    assert steps["1"]["state"] == "done"


async def test_wait_until_a_time_and_a_time_passed(database_url: str) -> None:
    workflows = [
        {"name": "future", "trigger": CART, "steps": [{"wait": {"until": iso(START + 3 * HOUR)}}, email_step()]},
        {"name": "past", "trigger": CART, "steps": [{"wait": {"until": iso(START - HOUR)}}, email_step()]},
        {"name": "offset", "trigger": CART, "steps": [
            {"wait": {"until": iso(START + 3 * HOUR).replace("Z", "+02:00"), "offset": "30m"}}, email_step()]},
    ]
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Cart Abandoned"))
        await w.run()
        due = {r.workflow: (r.state, r.due_at) for r in w.all_runs()}
        past_steps = w.steps(w.only_run("past"))
        assert [a["workflow"] for a in w.sent()] == ["past"]  # at once
        await w.later(DAY)
        sent = [(a["workflow"], a["at"]) for a in w.sent()]
    assert due["future"] == ("waiting", START + 3 * HOUR)
    assert due["offset"] == ("waiting", START + HOUR + 30 * 60)  # 11:00+02:00 is 09:00Z, plus 30 minutes
    assert due["past"][0] == "completed"
    assert past_steps["0"]["state"] == "skipped" and past_steps["0"]["output"] == {"reason": "the time has passed"}
    assert sent == [("past", START), ("offset", START + HOUR + 1800), ("future", START + 3 * HOUR)]


async def test_wait_until_a_profile_trait_with_an_offset(database_url: str) -> None:
    workflows = [{"name": "trial", "trigger": 'event = "Trial Started"', "steps": [
        {"wait": {"until_trait": "trial_ends_at", "offset": "-1d"}}, email_step()]}]
    with world(database_url, workflows) as w:
        await w.send(identify("iso", email="iso@example.com", trial_ends_at=iso(START + 5 * DAY)),
                     identify("ms", email="ms@example.com", trial_ends_at=int((START + 3 * DAY) * 1000)),
                     identify("none", email="none@example.com"),
                     track("iso", "Trial Started"), track("ms", "Trial Started"), track("none", "Trial Started"))
        await w.run()
        due = {r.run_key: (r.state, r.due_at) for r in w.all_runs()}
        missing = w.steps(w.only_run(key="userId:none"))
        assert [a["key"] for a in w.sent()] == ["userId:none"]
        await w.later(10 * DAY)
        sent = [(a["key"], a["at"]) for a in w.sent()]
    assert due["userId:iso"] == ("waiting", START + 4 * DAY)
    assert due["userId:ms"] == ("waiting", START + 2 * DAY)
    assert due["userId:none"][0] == "completed"
    assert missing["0"]["state"] == "skipped" and missing["0"]["output"] == {"reason": "no such trait"}
    assert sent == [("userId:none", START), ("userId:ms", START + 2 * DAY), ("userId:iso", START + 4 * DAY)]


# -- wait_for ---------------------------------------------------------------------------
WAIT_FOR = [{"name": "onboarding", "trigger": 'event = "Signed Up"', "steps": [
    {"name": "connected", "wait_for": CONNECTED, "timeout": "3d",
     "then": [email_step("thanks", integration={"@path": "$.steps.connected.event.properties.kind"})],
     "on_timeout": [email_step("nudge")]},
    email_step("after")]}]


async def test_wait_for_matched_takes_then_with_the_event(database_url: str) -> None:
    with world(database_url, WAIT_FOR) as w:
        await w.send(identify("u1", email="a@example.com"), identify("u2", email="b@example.com"),
                     track("u1", "Integration Connected", kind="early"),  # before its run: not waited for
                     track("u1", "Signed Up"), track("u2", "Signed Up"))
        await w.run()
        assert {r.state for r in w.all_runs()} == {"waiting"}
        await w.later(DAY)
        [seq] = await w.send(track("u1", "Integration Connected", kind="slack"))
        await w.send(track("u3", "Integration Connected", kind="other"))  # someone else's
        await w.run()
        run = w.only_run(key="userId:u1")
        other = w.only_run(key="userId:u2")
        steps = w.steps(run)
    assert run.state == "completed" and other.state == "waiting"
    output = steps["0"]["output"]
    assert output["matched"] is True and output["seq"] == seq
    assert output["event"]["event"] == "Integration Connected" and output["event"]["properties"] == {"kind": "slack"}
    assert [(a["step"], a["at"]) for a in w.sent()] == [("thanks", START + DAY), ("after", START + DAY)]
    assert w.sent()[0]["payload"]["dynamic_template_data"] == {"integration": "slack"}
    assert "0.on_timeout.0" not in steps and steps["0.then.0"]["state"] == "done"


async def test_wait_for_timeout_takes_on_timeout(database_url: str) -> None:
    with world(database_url, WAIT_FOR) as w:
        await w.send(identify("u2", email="b@example.com"), track("u2", "Signed Up"))
        await w.run()
        assert w.only_run().due_at == START + 3 * DAY
        await w.later(3 * DAY - 1)
        assert w.sent() == []
        await w.later(1)
        run = w.only_run()
        steps = w.steps(run)
        await w.send(track("u2", "Integration Connected", kind="late"))  # the run is over: nothing happens
        await w.later(DAY)
    assert run.state == "completed"
    assert steps["0"]["output"] == {"matched": False}
    assert [(a["step"], a["at"]) for a in w.sent()] == [("nudge", START + 3 * DAY), ("after", START + 3 * DAY)]


async def test_wait_for_without_branches_goes_on_either_way(database_url: str) -> None:
    workflows = [{"name": "plain", "trigger": 'event = "Signed Up"', "steps": [
        {"wait_for": CONNECTED, "timeout": "1h"}, email_step("next")]},
        {"name": "forever", "trigger": 'event = "Signed Up"', "steps": [{"wait_for": CONNECTED}, email_step("done")]}]
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="a@example.com"), identify("u2", email="b@example.com"),
                     track("u1", "Signed Up"), track("u2", "Signed Up"))
        await w.run()
        forever_due = w.only_run("forever", "userId:u1").due_at
        await w.later(10 * 60)
        await w.send(track("u1", "Integration Connected"))
        await w.run()
        await w.later(30 * DAY)
        states = {(r.workflow, r.run_key): r.state for r in w.all_runs()}
        sent = sorted((a["workflow"], a["key"], a["at"]) for a in w.sent())
    assert forever_due is None  # no timeout: no timer
    assert sent == [("forever", "userId:u1", START + 600), ("plain", "userId:u1", START + 600),
                    ("plain", "userId:u2", START + HOUR)]
    assert states[("forever", "userId:u2")] == "waiting"


# -- an event that arrives while the runner has the run in hand --------------------------
async def test_event_while_running_is_seen_by_wait_for(database_url: str) -> None:
    with world(database_url, WAIT_FOR) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Signed Up"))
        [run] = await w.runs.claim_due(w.clock(), 10, "owner-a", 60)
        assert w.runs.get(run.id).state == "running"  # type: ignore[union-attr]
        [seq] = await w.send(track("u1", "Integration Connected", kind="slack"))  # the intake cannot hand it over
        result = await w.engine.advance(run, w.clock(), w.clock())
        assert result.state == "waiting"  # the engine itself has not seen it
        stored = await w.runs.write_back(run, "owner-a", result, w.clock())
        await w.run()
        after = w.only_run()
        steps = w.steps(after)
    assert stored == "ready"
    assert after.state == "completed"
    assert steps["0"]["output"]["matched"] is True and steps["0"]["output"]["seq"] == seq
    assert [a["step"] for a in w.sent()] == ["thanks", "after"]


async def test_event_while_running_is_seen_by_exit_on(database_url: str) -> None:
    workflows = [{"name": "recovery", "trigger": CART, "exit_on": [ORDER], "steps": [{"wait": "1h"}, email_step()]}]
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Cart Abandoned"))
        [run] = await w.runs.claim_due(w.clock(), 10, "owner-a", 60)
        [seq] = await w.send(track("u1", "Order Completed"))
        result = await w.engine.advance(run, w.clock(), w.clock())
        stored = await w.runs.write_back(run, "owner-a", result, w.clock())
        await w.later(2 * HOUR)
        after = w.only_run()
    assert (result.state, stored) == ("waiting", "exited")
    assert after.state == "exited" and after.detail == f"exit_on matched event {seq}: {ORDER}"
    assert after.due_at is None and w.sent() == []


async def test_exit_while_a_dead_process_held_the_run_is_seen_after_takeover(database_url: str) -> None:
    """A process takes a run up and dies; an exit event arrives meanwhile; once the lease passed
    another process takes the run over: the run exits, nothing is sent."""
    workflows = [{"name": "recovery", "trigger": CART, "exit_on": [ORDER], "steps": [{"wait": "1h"}, email_step()]}]
    with world(database_url, workflows, lease_seconds=60) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Cart Abandoned"))
        await w.runs.claim_due(w.clock(), 10, "dead-process", 60)
        w.clock.now += 10
        [seq] = await w.send(track("u1", "Order Completed"))
        await w.jump(51)  # the lease passed: this runner takes the run over
        after = w.only_run()
        await w.later(2 * HOUR)
    assert after.state == "exited" and after.detail == f"exit_on matched event {seq}: {ORDER}"
    assert w.sent() == []


async def test_wait_for_event_while_a_dead_process_held_the_run_is_seen_after_takeover(database_url: str) -> None:
    with world(database_url, WAIT_FOR, lease_seconds=60) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Signed Up"))
        await w.runs.claim_due(w.clock(), 10, "dead-process", 60)
        w.clock.now += 10
        [seq] = await w.send(track("u1", "Integration Connected", kind="slack"))
        await w.jump(51)
        run = w.only_run()
        steps = w.steps(run)
    assert run.state == "completed"
    assert steps["0"]["output"]["matched"] is True and steps["0"]["output"]["seq"] == seq
    assert [(a["step"], a["at"]) for a in w.sent()] == [("thanks", START + 61), ("after", START + 61)]


async def test_wait_for_ignores_an_event_that_came_before_it_began(database_url: str) -> None:
    """An event the run's later wait_for would match, arriving while the run waits on a timer, is
    not the one the wait_for waits for."""
    workflows = [{"name": "later", "trigger": 'event = "Signed Up"', "steps": [
        {"wait": "1h"}, {"name": "connected", "wait_for": CONNECTED, "timeout": "1d", "on_timeout": [email_step()]}]}]
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Signed Up"))
        await w.later(10 * 60)
        await w.send(track("u1", "Integration Connected"))
        await w.later(HOUR)
        run = w.only_run()
        await w.later(DAY)
        steps = w.steps(run)
    assert (run.state, run.position, run.due_at) == ("waiting", "1", START + HOUR + DAY)
    assert steps["1"]["output"] == {"matched": False}
    assert [a["at"] for a in w.sent()] == [START + HOUR + DAY]


# -- if ---------------------------------------------------------------------------------
async def test_if_over_the_trigger_with_profile_traits(database_url: str) -> None:
    workflows = [{"name": "order", "trigger": ORDER, "steps": [
        {"name": "vip", "if": 'traits.plan = "pro" and properties.total > 100',
         "then": [email_step("vip_email")], "else": [email_step("regular_email")]},
        email_step("always")]}]
    with world(database_url, workflows) as w:
        await w.send(identify("big", email="big@example.com", plan="pro"),
                     identify("free", email="free@example.com", plan="free"),
                     identify("small", email="small@example.com", plan="free"),
                     identify("small", plan="pro"),  # the latest value wins
                     track("big", "Order Completed", total=150), track("free", "Order Completed", total=500),
                     track("small", "Order Completed", total=50))
        await w.run()
        results = {r.run_key: w.steps(r)["0"]["output"] for r in w.all_runs()}
    steps = sorted((a["key"], a["step"]) for a in w.sent())
    assert results == {"userId:big": {"result": True}, "userId:free": {"result": False},
                       "userId:small": {"result": False}}
    assert steps == [("userId:big", "always"), ("userId:big", "vip_email"), ("userId:free", "always"),
                     ("userId:free", "regular_email"), ("userId:small", "always"),
                     ("userId:small", "regular_email")]


async def test_if_count_within(database_url: str) -> None:
    workflows = [{"name": "checkout", "trigger": 'event = "Checkout Started"', "steps": [
        {"name": "browsed", "if": {"count": 'event = "Product Viewed"', "within": "1h", "at_least": 2},
         "then": [{"exit": "browsed enough"}]}, email_step()]}]
    with world(database_url, workflows) as w:
        await w.send(identify("recent", email="r@example.com"), identify("spread", email="s@example.com"),
                     track("spread", "Product Viewed"))
        w.clock.now += 2 * HOUR
        await w.send(track("recent", "Product Viewed"), track("spread", "Product Viewed"))
        w.clock.now += 30 * 60
        await w.send(track("recent", "Product Viewed"), track("recent", "Checkout Started"),
                     track("spread", "Checkout Started"))
        await w.run()
        states = {r.run_key: (r.state, w.steps(r)["0"]["output"]) for r in w.all_runs()}
    assert states == {"userId:recent": ("exited", {"result": True}), "userId:spread": ("completed", {"result": False})}
    assert [a["key"] for a in w.sent()] == ["userId:spread"]


CONVERTED = [{"name": "recovery", "trigger": CART, "steps": [
    {"wait": "2h"},
    {"name": "converted", "if": {"count": ORDER, "since": "trigger", "at_least": 1},
     "then": [{"exit": "converted during the wait"}]},
    email_step()]}]


async def test_if_count_since_trigger(database_url: str) -> None:
    with world(database_url, CONVERTED) as w:
        await w.send(identify("buyer", email="b@example.com"), identify("before", email="o@example.com"),
                     track("before", "Order Completed"))
        w.clock.now += 60
        await w.send(track("buyer", "Cart Abandoned"), track("before", "Cart Abandoned"))
        await w.later(HOUR)
        await w.send(track("buyer", "Order Completed"))
        await w.later(2 * HOUR)
        runs = {r.run_key: r for r in w.all_runs()}
    assert runs["userId:buyer"].state == "exited"
    assert runs["userId:buyer"].detail == "exit step exit_1_then_0: converted during the wait"
    assert runs["userId:before"].state == "completed"  # its order came before the run started
    assert [a["key"] for a in w.sent()] == ["userId:before"]


async def test_count_since_trigger_ignores_earlier_events_of_the_same_window(database_url: str) -> None:
    """The intake applies a whole window at one time: an order that comes before the trigger in
    the same window is not "since the trigger"."""
    with world(database_url, CONVERTED) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Order Completed"),
                     track("u1", "Cart Abandoned"))
        await w.later(3 * HOUR)
        run = w.only_run()
        steps = w.steps(run)
    assert run.state == "completed" and steps["1"]["output"] == {"result": False}
    assert len(w.sent()) == 1


async def test_count_since_trigger_does_not_count_the_trigger(database_url: str) -> None:
    workflows = [{"name": "again", "trigger": CART, "steps": [
        {"wait": "1h"},
        {"name": "only_once", "if": {"count": CART, "since": "trigger", "at_most": 0},
         "then": [email_step("first")], "else": [email_step("repeat")]}]}]
    with world(database_url, workflows) as w:
        await w.send(identify("once", email="a@example.com"), identify("twice", email="b@example.com"),
                     track("once", "Cart Abandoned"), track("twice", "Cart Abandoned"))
        await w.later(10 * 60)
        await w.send(track("twice", "Cart Abandoned"))  # no second run (after_exit): counted by the first
        await w.later(HOUR)
    assert sorted((a["key"], a["step"]) for a in w.sent()) == [("userId:once", "first"), ("userId:twice", "repeat")]


async def test_if_all_any_not(database_url: str) -> None:
    recently_bought = {"count": ORDER, "within": "7d", "at_least": 1}
    workflows = [{"name": "upsell", "trigger": 'event = "Pricing Viewed"', "steps": [
        {"name": "all_of", "if": {"all": ['traits.plan = "pro"', {"not": recently_bought}]}},
        {"name": "any_of", "if": {"any": ['properties.plan = "enterprise"', recently_bought]}},
        {"name": "neither", "if": {"not": {"any": ['traits.plan = "pro"', 'properties.plan = "enterprise"']}}}]}]
    with world(database_url, workflows) as w:
        await w.send(identify("pro", plan="pro"), identify("buyer", plan="pro"), identify("free", plan="free"),
                     identify("other", plan="free"), track("buyer", "Order Completed"))
        w.clock.now += DAY
        await w.send(track("pro", "Pricing Viewed", plan="team"), track("buyer", "Pricing Viewed", plan="team"),
                     track("free", "Pricing Viewed", plan="enterprise"), track("other", "Pricing Viewed", plan="team"))
        await w.run()
        results = {r.run_key.removeprefix("userId:"): tuple(w.steps(r)[p]["output"]["result"] for p in "012")
                   for r in w.all_runs()}
    assert results == {"pro": (True, False, False), "buyer": (False, True, False), "free": (False, True, False),
                       "other": (False, False, True)}


# -- lookup -----------------------------------------------------------------------------
async def test_lookup_has_identify_and_engagement_traits(database_url: str) -> None:
    workflows = [{"name": "engaged", "trigger": 'event = "Check Engagement"', "steps": [
        {"name": "profile", "lookup": "profile"},
        {"name": "opener", "if": 'traits.emails_opened >= 2 and traits.email_bounced = true'},
        email_step(opened={"@path": "$.steps.profile.emails_opened"})]}]
    t = START
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="ada@example.com", first_name="Ada"), identify("u1", plan="pro"))
        await w.send(sendgrid_event("delivered", "ada@example.com", t + 1, "u1"),
                     sendgrid_event("open", "ada@example.com", t + 2, "u1"),
                     sendgrid_event("open", "ada@example.com", t + 3, "u1", sg_machine_open=True),  # Apple MPP
                     sendgrid_event("open", "ada@example.com", t + 4, "u1"),
                     sendgrid_event("click", "ada@example.com", t + 5, "u1", url="https://x.example"),
                     sendgrid_event("bounce", "ada@example.com", t + 6, "u1", reason="full", type="bounce"),
                     sendgrid_event("unsubscribe", "ada@example.com", t + 7, "u1"))
        await w.send(track("u1", "Check Engagement"))
        await w.run()
        run = w.only_run()
        steps = w.steps(run)
    profile = run.context["steps"]["profile"]
    assert steps["0"]["output"] == {"traits": len(profile)}
    assert run.state == "completed"
    assert {k: profile[k] for k in ("email", "first_name", "plan")} == {
        "email": "ada@example.com", "first_name": "Ada", "plan": "pro"}
    assert profile["emails_delivered"] == 1 and profile["emails_opened"] == 2 and profile["emails_clicked"] == 1
    assert profile["emails_bounced"] == 1 and profile["email_bounced"] is True and profile["unsubscribed"] is True
    assert profile["last_email_opened_at"] == "2027-01-15T08:00:04.000Z"
    assert profile["last_email_delivered_at"] == "2027-01-15T08:00:01.000Z"
    assert profile["unsubscribed_at"] == "2027-01-15T08:00:07.000Z"
    assert steps["1"]["output"] == {"result": True}
    assert w.sent()[0]["payload"]["dynamic_template_data"] == {"opened": 2}


async def test_lookup_by_email_joins_sendgrid_events_without_a_user_id(database_url: str) -> None:
    workflows = [{"name": "by-email", "trigger": 'event = "Email Opened"', "key": ["email"], "steps": [
        {"name": "profile", "lookup": "profile"}]}]
    with world(database_url, workflows) as w:
        await w.send({"type": "identify", "userId": "u1", "traits": {"email": "Ada@Example.com", "name": "Ada"}},
                     sendgrid_event("open", "ada@example.com", START))
        await w.run()
        run = w.only_run()
        profile = run.context["steps"]["profile"]
    assert run.run_key == "email:ada@example.com"
    assert profile["name"] == "Ada" and profile["emails_opened"] == 1


# -- action and exit ----------------------------------------------------------------------
async def test_action_mapping_sees_profile_trigger_and_run(database_url: str) -> None:
    workflows = [{"name": "recovery", "trigger": CART, "steps": [
        {"action": "sendEmail", "destination": "sendgrid", "name": "mail", "mapping": {
            "from": {"email": "shop@example.com"}, "to": {"email": {"@path": "$.traits.email"},
                                                            "name": {"@path": "$.profile.first_name"}},
            "template_id": "d-0c6a2b7f5e1d4c3b9a8f7e6d5c4b3a21",
            "custom_args": {"run": {"@path": "$.workflow.run"}, "mid": {"@path": "$.messageId"}},
            "dynamic_template_data": {"products": {"@path": "$.properties.products"}}}}]}]
    products = [{"sku": "tee-42"}]
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="ada@example.com", first_name="Ada"),
                     track("u1", "Cart Abandoned", products=products))
        await w.run()
        run = w.only_run()
    [sent] = w.sent()
    assert sent["payload"]["to"] == {"email": "ada@example.com", "name": "Ada"}
    assert sent["payload"]["dynamic_template_data"] == {"products": products}
    assert sent["payload"]["custom_args"] == {"run": run.id, "mid": f"wf-recovery-{run.id}-0"}
    assert run.state == "completed"


async def test_exit_step_ends_the_run(database_url: str) -> None:
    workflows = [{"name": "gate", "trigger": CART, "steps": [
        {"if": 'traits.vip = true', "then": [{"exit": "vips are called"}]}, email_step()]}]
    with world(database_url, workflows) as w:
        await w.send(identify("vip", email="v@example.com", vip=True), identify("usual", email="u@example.com"),
                     track("vip", "Cart Abandoned"), track("usual", "Cart Abandoned"))
        await w.run()
        runs = {r.run_key: (r.state, r.detail) for r in w.all_runs()}
    assert runs["userId:vip"] == ("exited", "exit step exit_0_then_0: vips are called")
    assert runs["userId:usual"] == ("completed", "completed")
    assert [a["key"] for a in w.sent()] == ["userId:usual"]


async def test_nested_branches_wait_and_resume_after_their_holder(database_url: str) -> None:
    workflows = [{"name": "nested", "trigger": 'event = "Signed Up"', "steps": [
        {"if": 'traits.plan = "pro"', "then": [
            {"wait": "1h"},
            {"wait_for": CONNECTED, "timeout": "1d", "on_timeout": [{"wait": "2h"}, email_step("nudge")]}],
         "else": [email_step("basic")]},
        email_step("last")]}]
    with world(database_url, workflows) as w:
        await w.send(identify("pro", email="p@example.com", plan="pro"), identify("free", email="f@example.com"),
                     track("pro", "Signed Up"), track("free", "Signed Up"))
        await w.run()
        await w.later(HOUR)
        at_wait_for = w.only_run(key="userId:pro").position
        await w.later(DAY + HOUR)
        inside = w.only_run(key="userId:pro")
        await w.later(HOUR)
        runs = {r.run_key: r.state for r in w.all_runs()}
        steps = w.steps(inside)
    assert at_wait_for == "0.then.1"
    assert (inside.state, inside.position, inside.due_at) == ("waiting", "0.then.1.on_timeout.0",
                                                              START + 3 * HOUR + DAY)
    assert runs == {"userId:pro": "completed", "userId:free": "completed"}
    assert sorted((a["key"], a["step"], a["at"]) for a in w.sent()) == [
        ("userId:free", "basic", START), ("userId:free", "last", START),
        ("userId:pro", "last", START + 3 * HOUR + DAY), ("userId:pro", "nudge", START + 3 * HOUR + DAY)]
    assert set(steps) == {"0", "0.then.0", "0.then.1", "0.then.1.on_timeout.0", "0.then.1.on_timeout.1",
                                  "1"}


async def test_a_disabled_workflow_starts_no_run(database_url: str) -> None:
    workflows: list[dict[str, Any]] = [{"name": "off", "trigger": CART, "enabled": False, "steps": [email_step()]},
                 {"name": "on", "trigger": CART, "steps": [email_step()]}]
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Cart Abandoned"))
        await w.run()
        runs = [r.workflow for r in w.all_runs()]
    assert runs == ["on"] and [a["workflow"] for a in w.sent()] == ["on"]


async def test_a_dotted_key_makes_one_run_per_account(database_url: str) -> None:
    workflows = [{"name": "account", "trigger": 'event = "Seat Added"', "key": ["properties.account_id"],
                  "exit_on": ['event = "Plan Upgraded"'], "steps": [{"wait": "1d"}, {"lookup": "profile"}]}]
    with world(database_url, workflows) as w:
        await w.send(track("ann", "Seat Added", account_id="acme"), track("bo", "Seat Added", account_id="acme"),
                     track("cy", "Seat Added", account_id="initech"), track("dee", "Seat Added"))
        await w.run()
        keys = sorted(r.run_key for r in w.all_runs())
        await w.send(track("bo", "Plan Upgraded", account_id="acme"))
        await w.later(2 * DAY)
        states = {r.run_key: r.state for r in w.all_runs()}
    assert keys == ["properties.account_id:acme", "properties.account_id:initech"]  # dee has no account: no run
    assert states == {"properties.account_id:acme": "exited", "properties.account_id:initech": "completed"}


async def test_a_run_cancelled_while_running_is_not_written_back(database_url: str) -> None:
    workflows = [{"name": "w", "trigger": CART, "steps": [{"wait": "1h"}, email_step()]}]
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Cart Abandoned"))
        [run] = await w.runs.claim_due(w.clock(), 10, "owner-a", 60)
        result = await w.engine.advance(run, w.clock(), w.clock())
        assert w.runs.cancel(run.id, w.clock())
        stored = await w.runs.write_back(run, "owner-a", result, w.clock())
        await w.later(2 * HOUR)
        after = w.only_run()
        cancel_again = w.runs.cancel(run.id, w.clock())
    assert stored is None and cancel_again is False
    assert (after.state, after.due_at, after.detail) == ("cancelled", None, "cancelled by an operator")
    assert w.sent() == []


async def test_counted_events_are_pruned_past_history_seconds(database_url: str) -> None:
    workflows = [{"name": "w", "trigger": 'event = "Checkout Started"', "steps": [
        {"name": "many", "if": {"count": 'event = "Product Viewed"', "within": "1d", "at_least": 1}}]}]
    with world(database_url, workflows, history_seconds=2 * DAY) as w:
        await w.send(track("u1", "Product Viewed"))
        w.clock.now += DAY
        await w.send(track("u1", "Product Viewed"))
        w.clock.now += 1.5 * DAY
        pruned = await w.runner.prune()
        left = await w.runs.count_async("userId:u1", 'event = "Product Viewed"', 0, w.clock())
    assert (pruned, left) == (1, 1)


# -- exit_on, reentry, trigger counts ------------------------------------------------------
async def test_exit_on_ends_a_waiting_run_and_nothing_is_sent(database_url: str) -> None:
    workflows = [{"name": "recovery", "trigger": CART, "exit_on": [ORDER, 'event = "Email Bounced"'],
                  "steps": [{"wait": "2h"}, email_step()]}]
    with world(database_url, workflows) as w:
        await w.send(identify("buyer", email="b@example.com"), identify("bounced", email="x@example.com"),
                     identify("other", email="o@example.com"),
                     track("buyer", "Cart Abandoned"), track("bounced", "Cart Abandoned"),
                     track("other", "Cart Abandoned"))
        await w.run()
        await w.later(HOUR)
        [order] = await w.send(track("buyer", "Order Completed"))
        [bounce] = await w.send(sendgrid_event("bounce", "x@example.com", w.clock(), "bounced", type="bounce",
                                               reason="550"))
        runs = {r.run_key: r for r in w.all_runs()}
        await w.later(2 * HOUR)
    assert (runs["userId:buyer"].state, runs["userId:buyer"].detail) == ("exited", f"exit_on matched event {order}: "
                                                                                  f"{ORDER}")
    assert runs["userId:bounced"].state == "exited" and f"event {bounce}" in str(runs["userId:bounced"].detail)
    assert runs["userId:buyer"].due_at is None
    assert [a["key"] for a in w.sent()] == ["userId:other"]


async def test_reentry(database_url: str) -> None:
    steps = [{"wait": "1h"}, email_step()]
    workflows = [{"name": r, "trigger": CART, "reentry": r, "exit_on": [ORDER], "steps": steps}
                 for r in ("after_exit", "always", "never")]
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Cart Abandoned"))
        await w.later(10 * 60)
        await w.send(track("u1", "Cart Abandoned"))  # while the first runs are active
        counts_active = {name: len(w.all_runs(name)) for name in ("after_exit", "always", "never")}
        await w.later(2 * HOUR)  # all completed
        await w.send(track("u1", "Cart Abandoned"))
        await w.later(10 * 60)
        await w.send(track("u1", "Order Completed"))  # exits the active ones
        await w.send(track("u1", "Cart Abandoned"))
        await w.later(2 * HOUR)
        states = {name: [r.state for r in w.all_runs(name)] for name in ("after_exit", "always", "never")}
    assert counts_active == {"after_exit": 1, "always": 2, "never": 1}
    assert states == {"after_exit": ["completed", "exited", "completed"],
                      "always": ["completed", "completed", "exited", "completed"],
                      "never": ["completed"]}


async def test_when_counts_trigger_events_within_a_window(database_url: str) -> None:
    workflows = [{"name": "pricing", "trigger": 'event = "Pricing Viewed"',
                  "when": {"count": 'event = "Pricing Viewed"', "within": "24h", "at_least": 3},
                  "steps": [email_step()]}]
    with world(database_url, workflows) as w:
        await w.send(identify("keen", email="k@example.com"), identify("slow", email="s@example.com"))
        seqs: dict[str, list[int]] = {"keen": [], "slow": []}
        for hours, user in ((0, "keen"), (0, "slow"), (1, "keen"), (2, "keen"), (13, "slow"), (25, "slow")):
            w.clock.now = START + hours * HOUR
            seqs[user] += await w.send(track(user, "Pricing Viewed"))
            await w.run()
            assert len(w.all_runs()) == (0 if hours < 2 else 1), hours  # keen's third view only
        slow_before = [r for r in w.all_runs() if r.run_key == "userId:slow"]
        w.clock.now = START + 26 * HOUR  # three within 24 h: 13 h, 25 h, 26 h
        seqs["slow"] += await w.send(track("slow", "Pricing Viewed"))
        await w.run()
        runs = {r.run_key: r.trigger_seq for r in w.all_runs()}
    assert slow_before == []
    assert runs == {"userId:keen": seqs["keen"][2], "userId:slow": seqs["slow"][3]}
    assert sorted(a["key"] for a in w.sent()) == ["userId:keen", "userId:slow"]


# -- timers late and missed ----------------------------------------------------------------
async def test_a_timer_late_within_max_lateness_goes_on(database_url: str) -> None:
    workflows = [{"name": "strict", "trigger": CART, "max_lateness": "10m", "steps": [{"wait": "1h"}, email_step()]}]
    with world(database_url, workflows) as w:
        await w.send(identify("late", email="l@example.com"), track("late", "Cart Abandoned"))
        await w.run()
        w.clock.now += 60
        await w.send(identify("fine", email="f@example.com"), track("fine", "Cart Abandoned"))
        await w.run()
        await w.jump(HOUR + 5 * 60)  # "fine" fires 5 minutes late, "late" 6: both inside 10 minutes
        late = {r.run_key: w.steps(r)["0"]["output"]["late_seconds"] for r in w.all_runs()}
        states = {r.state for r in w.all_runs()}
    assert sorted(a["key"] for a in w.sent()) == ["userId:fine", "userId:late"]
    assert late == {"userId:fine": 300.0, "userId:late": 360.0} and states == {"completed"}


async def test_timer_past_max_lateness_is_late_and_sends_nothing(database_url: str) -> None:
    workflows = [{"name": "strict", "trigger": CART, "max_lateness": "10m", "steps": [{"wait": "1h"}, email_step()]}]
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="l@example.com"), track("u1", "Cart Abandoned"))
        await w.run()
        await w.jump(HOUR + 11 * 60)
        run = w.only_run()
        steps = w.steps(run)
    assert run.state == "late" and "past max_lateness" in str(run.detail)
    assert steps["0"]["state"] == "late" and steps["0"]["output"] == {"late_seconds": 660.0}
    assert w.sent() == []


async def test_timer_due_while_down_fires_at_once(database_url: str) -> None:
    workflows = [{"name": "drip", "trigger": CART, "steps": [
        {"wait": "1h"}, email_step("first"), {"wait": "1h"}, email_step("second")]}]
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="a@example.com"), track("u1", "Cart Abandoned"))
        await w.run()
        await w.jump(5 * HOUR)  # down for 5 hours, then up: the first timer fires now
        run = w.only_run()
        first = [(a["step"], a["at"]) for a in w.sent()]
        await w.later(HOUR)
        steps = w.steps(run)
    assert first == [("first", START + 5 * HOUR)]
    assert (run.state, run.due_at) == ("waiting", START + 6 * HOUR)  # the next wait counts from now
    assert steps["0"]["output"] == {"late_seconds": 4 * HOUR}
    assert [(a["step"], a["at"]) for a in w.sent()] == [("first", START + 5 * HOUR), ("second", START + 6 * HOUR)]


# -- a window applied twice ---------------------------------------------------------------
async def test_a_window_applied_twice_changes_nothing(database_url: str) -> None:
    workflows: list[dict[str, Any]] = [
        {"name": "pricing", "trigger": 'event = "Pricing Viewed"',
         "when": {"count": 'event = "Pricing Viewed"', "within": "24h", "at_least": 3},
         "steps": [{"name": "profile", "lookup": "profile"}]},
        {"name": "recovery", "trigger": CART, "steps": [{"wait": "1h"}, {"name": "profile", "lookup": "profile"}]}]
    with world(database_url, workflows) as w:
        await w.send(identify("u1", email="a@example.com"),
                     sendgrid_event("open", "a@example.com", START, "u1"),
                     track("u1", "Pricing Viewed"), track("u1", "Pricing Viewed"), track("u1", "Cart Abandoned"))
        await w.redeliver()  # the intake crashed before its cursor moved
        await w.run()
        await w.redeliver()  # again, after the runner took the run up
        assert [r.workflow for r in w.all_runs()] == ["recovery"]  # two views only, one cart run
        assert await w.runs.count_async("userId:u1", 'event = "Pricing Viewed"', 0, w.clock()) == 2
        [third] = await w.send(track("u1", "Pricing Viewed"))
        await w.redeliver()
        await w.run()
        await w.later(HOUR)
        runs = w.all_runs()
        profiles = {r.workflow: r.context["steps"]["profile"] for r in runs}
    assert [(r.workflow, r.state) for r in runs] == [("recovery", "completed"), ("pricing", "completed")]
    assert runs[1].trigger_seq == third
    assert profiles["pricing"]["emails_opened"] == 1 and profiles["recovery"]["emails_opened"] == 1
