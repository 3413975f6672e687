"""Workflows as configured (errors name the path of the bad key) and as the CLI shows them:
``sgbridge workflows test`` on the example, and ``list``, ``runs``, ``show``, ``cancel`` on a
journal the engine filled (both journals)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from sgbridge.cli import main
from sgbridge.journal import Journal
from sgbridge.settings import ConfigError, load_settings
from tests.workflows.harness import HOUR, World, identify, track

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workflows"
ACTIONS = '[actions.sendgrid]\ndestination = "sendgrid"\nsettings = { sendGridApiKey = "SG.test-key" }\n'


def _problem(tmp_path: Path, workflows: str, extra: str = "") -> str:
    """The message of the config's problem, after 'invalid configuration (<file>): '."""
    config = tmp_path / "bad.toml"
    config.write_text(ACTIONS + extra + workflows)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert message.startswith(f"invalid configuration ({config} and environment): "), message
    return message.split("): ", 1)[1]


TRIGGER = 'name = "w"\ntrigger = \'event = "Cart Abandoned"\'\n'


@pytest.mark.parametrize(("steps", "expected"), [
    ('[{ wait = "1h" }, { wait = "2 hours" }]', 'workflows[0].steps[1].wait: a duration such as "2h"'),
    ('[{ wait = "-1h" }]', "workflows[0].steps[0].wait: must not be negative"),
    ('[{ wait = { until = "next tuesday" } }]', "workflows[0].steps[0].wait.until: an ISO 8601 time"),
    ('[{ wait = { until_time = "2027-01-01" } }]', "workflows[0].steps[0].wait.until_time: unknown key"),
    ('[{ wait = { until_trait = "t", offset = "soon" } }]', "workflows[0].steps[0].wait.offset: a duration"),
    ('[{ sleep = "1h" }]', "workflows[0].steps[0]: a step has exactly one of wait, wait_for, if, lookup, action"),
    ('[{ wait = "1h", exit = "x" }]', "workflows[0].steps[0]: a step has exactly one of"),
    ('[{ action = "sendEmail", destination = "mailer" }]',
     "workflows[0].steps[0].destination: the name of an [actions.NAME] destination"),
    ('[{ action = "sendSms", destination = "sendgrid" }]', "workflows[0].steps[0].action: "),
    ('[{ action = "sendEmail", destination = "sendgrid", mapping = { subjekt = "hi" } }]',
     "workflows[0].steps[0].mapping.subjekt: "),
    ('[{ wait_for = \'event = "X"\', on_timeout = [{ exit = "gone" }] }]',
     "workflows[0].steps[0].on_timeout: needs a timeout"),
    ('[{ wait_for = \'event = "X"\', timeout = "3 days" }]', "workflows[0].steps[0].timeout: a duration"),
    ('[{ wait_for = \'event = "X"\', timeout = "1d", then = [{ wait = "soon" }] }]',
     "workflows[0].steps[0].then[0].wait: a duration"),
    ('[{ wait_for = \'(event = "X"\' }]', "workflows[0].steps[0].wait_for: invalid subscription"),
    ('[{ if = { count = \'event = "X"\', at_least = 1 } }]',
     'workflows[0].steps[0].if: a count needs within = "24h" or since = "trigger"'),
    ('[{ if = { count = \'event = "X"\', within = "1h" } }]', "workflows[0].steps[0].if: a count needs at_least"),
    ('[{ if = { count = \'event = "X"\', since = "signup", at_least = 1 } }]',
     'workflows[0].steps[0].if.since: only "trigger"'),
    ('[{ if = { all = [\'event = "X"\', { nor = "y" }] } }]', "workflows[0].steps[0].if.all[1].nor: unknown key"),
    ('[{ if = \'event = "X"\', else = [{ lookup = "segment" }] }]', 'workflows[0].steps[0].else[0].lookup: "profile"'),
    ('[{ wait = "1h", name = "a" }, { wait = "1h", name = "a" }]', "workflows[0].steps[1].name: 'a' names another"),
    ("[]", "workflows[0].steps: a workflow needs at least one step"),
])
def test_a_bad_step_is_refused_with_its_path(tmp_path: Path, steps: str, expected: str) -> None:
    problem = _problem(tmp_path, f"[[workflows]]\n{TRIGGER}steps = {steps}\n")
    assert problem.startswith(expected), problem


@pytest.mark.parametrize(("workflow", "expected"), [
    ('when = { count = \'event = "X"\', at_least = 3 }\n', 'workflows[0].when: a count needs within = "24h"'),
    ('when = { count = \'event = "X"\', since = "trigger", at_least = 3 }\n',
     "workflows[0].when: a trigger's count takes within"),
    ("exit_on = ['event = \"X\"', 'ordered']\n", "workflows[0].exit_on[1]: invalid subscription 'ordered'"),
    ('max_lateness = "a while"\n', "workflows[0].max_lateness: a duration"),
    ("key = []\n", "workflows[0].key: at least one of"),
    ('when = { count = \'event = "X"\', within = "60d", at_least = 3 }\n',
     "workflows[0]: a count looks back further than workflow_engine.history_seconds"),
])
def test_a_bad_workflow_is_refused_with_its_path(tmp_path: Path, workflow: str, expected: str) -> None:
    problem = _problem(tmp_path, f'[[workflows]]\n{TRIGGER}{workflow}steps = [{{ wait = "1h" }}]\n')
    assert problem.startswith(expected), problem


def test_a_bad_trigger_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    bad_trigger = _problem(tmp_path, '[[workflows]]\nname = "w"\ntrigger = "foo"\nsteps = [{ wait = "1h" }]\n')
    twice = _problem(tmp_path, "".join(f'[[workflows]]\nname = "{n}"\ntrigger = "all"\nsteps = [{{ wait = "1h" }}]\n'
                                       for n in ("a", "b", "a")))
    assert bad_trigger.startswith("workflows[0].trigger: invalid subscription 'foo'"), bad_trigger
    assert twice.startswith("workflows[2].name: 'a' names another workflow"), twice


def test_the_cli_reports_the_path_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(ACTIONS + f'[[workflows]]\n{TRIGGER}steps = [{{ wait = "1h" }}, {{ wait = "2 hours" }}]\n')
    result = CliRunner().invoke(main, ["workflows", "list", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "workflows[0].steps[1].wait: a duration" in result.stderr


# -- sgbridge workflows test ---------------------------------------------------------------
def _json(result: Result) -> Any:
    assert result.exit_code == 0, (result.output, result.exception)
    return orjson.loads(result.stdout)


def test_workflows_test_on_the_example() -> None:
    result = CliRunner().invoke(main, ["workflows", "test", "--config", str(EXAMPLE / "high-intent-recovery.toml"),
                                       "--events", str(EXAMPLE / "high-intent-recovery.events.json")])
    report = _json(result)
    runs = {(r["workflow"], r["key"]): r for r in report["runs"]}
    assert report["sent"] is False
    assert sorted(runs) == [("cart-recovery", "userId:u-ada"), ("cart-recovery", "userId:u-bob"),
                            ("pricing-intent", "userId:u-cy")]  # cy's first two views start nothing
    ada = runs[("cart-recovery", "userId:u-ada")]
    [email] = ada["actions"]
    assert ada["state"] == "completed" and email["at"] == "2026-12-01T12:00:00.000Z"
    assert email["payload"]["to"] == {"email": "ada@example.com", "name": "Ada"}
    assert email["payload"]["dynamic_template_data"]["products"] == [{"sku": "tee-42", "name": "T-shirt"}]
    bob = runs[("cart-recovery", "userId:u-bob")]
    assert bob["state"] == "exited" and bob["actions"] == [] and "Order Completed" in bob["detail"]
    assert bob["ended_at"] == "2026-12-01T11:00:00.000Z"
    cy = runs[("pricing-intent", "userId:u-cy")]
    assert cy["trigger_event"] == 8 and cy["started_at"] == "2026-12-02T08:00:00.000Z"  # the third view
    assert [(a["at"], a["payload"]["dynamic_template_data"]) for a in cy["actions"]] == [
        ("2026-12-02T10:00:00.000Z", {"plan_viewed": "team", "company_size": "50-200"})]


def test_workflows_test_reads_sendgrid_events_with_a_type_field(tmp_path: Path) -> None:
    """SendGrid's bounce events carry "type" ("bounce" or "blocked"): still SendGrid events, so
    "Email Bounced" ends the run."""
    config = tmp_path / "c.toml"
    config.write_text(ACTIONS + '[[workflows]]\nname = "w"\ntrigger = \'event = "Cart Abandoned"\'\n'
                      "exit_on = ['event = \"Email Bounced\"']\n"
                      'steps = [{ wait = "2h" }, { action = "sendEmail", destination = "sendgrid", mapping = { '
                      'from = { email = "s@example.com" }, to = { email = { "@path" = "$.traits.email" } }, '
                      'template_id = "d-0c6a2b7f5e1d4c3b9a8f7e6d5c4b3a21" } }]\n')
    events = tmp_path / "events.json"
    events.write_bytes(orjson.dumps([
        {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com"}, "timestamp": "2026-12-01T09:00:00Z"},
        {"type": "track", "userId": "u1", "event": "Cart Abandoned", "timestamp": "2026-12-01T10:00:00Z"},
        {"email": "a@example.com", "event": "bounce", "type": "bounce", "reason": "550 no such user",
         "sg_event_id": "ZGVsaXZlcmVkLTAtMTIz", "sg_message_id": "m1.filter", "segment_user_id": "u1",
         "timestamp": 1796119200},  # 2026-12-01T11:00:00Z
    ]))
    report = _json(CliRunner().invoke(main, ["workflows", "test", "--config", str(config), "--events", str(events)]))
    [run] = report["runs"]
    assert run["state"] == "exited" and "Email Bounced" in run["detail"] and run["actions"] == []


def test_workflows_test_refuses_an_unknown_workflow_and_bad_events(tmp_path: Path) -> None:
    args = ["workflows", "test", "--config", str(EXAMPLE / "high-intent-recovery.toml"), "--events"]
    unknown = CliRunner().invoke(main, [*args, str(EXAMPLE / "high-intent-recovery.events.json"),
                                        "--workflow", "nope"])
    bad = tmp_path / "bad.json"
    bad.write_text('[{"type": "track"}, 3]')
    not_objects = CliRunner().invoke(main, [*args, str(bad)])
    assert unknown.exit_code == 2 and "no workflow 'nope'" in unknown.stderr
    assert not_objects.exit_code == 2 and "event 1 of" in not_objects.stderr


# -- list, runs, show, cancel -------------------------------------------------------------
CONFIG = ACTIONS + """
[[workflows]]
name = "recovery"
trigger = 'event = "Cart Abandoned"'
exit_on = ['event = "Order Completed"']
steps = [{ wait = "2h" }, { action = "sendEmail", destination = "sendgrid", name = "mail", mapping = { \
from = { email = "s@example.com" }, to = { email = { "@path" = "$.traits.email" } }, \
template_id = "d-0c6a2b7f5e1d4c3b9a8f7e6d5c4b3a21" } }]

[[workflows]]
name = "idle"
trigger = 'event = "Never Happens"'
steps = [{ exit = "never" }]
"""


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["workflows", *args])


def _lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, (result.output, result.exception)
    return [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]


async def _populate(config: Path, database_url: str) -> dict[str, int]:
    """Runs of the "recovery" workflow: done (emailed), waits (its timer ahead), buys (exited)."""
    journal = Journal(database_url)
    try:
        w = World(journal, load_settings(config))
        await w.send(*(identify(u, email=f"{u}@example.com") for u in ("done", "waits", "buys")),
                     track("done", "Cart Abandoned", products=["done"]))
        await w.run()
        w.clock.now += HOUR
        await w.send(track("waits", "Cart Abandoned", products=["waits"]), track("buys", "Cart Abandoned"))
        await w.later(HOUR / 2)
        await w.send(track("buys", "Order Completed"))
        await w.later(HOUR)  # 2.5 h: done's timer fired, waits' is at 3 h
        assert [a["key"] for a in w.sent()] == ["userId:done"]
        return {r.run_key.removeprefix("userId:"): r.id for r in w.all_runs()}
    finally:
        journal.close()


@pytest.mark.anyio
async def test_list_runs_show_cancel(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGBRIDGE_DATABASE_URL", database_url)
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    ids = await _populate(config, database_url)

    listed = {row["name"]: row for row in _lines(_cli("list", "--config", str(config), "--json"))}
    assert listed["recovery"]["runs"] == {"completed": 1, "waiting": 1, "exited": 1}
    assert listed["recovery"]["steps"] == 2 and listed["recovery"]["exit_on"] == ['event = "Order Completed"']
    assert listed["idle"]["runs"] == {} and listed["idle"]["enabled"] is True
    table = _cli("list", "--config", str(config))
    assert table.exit_code == 0 and "recovery" in table.stdout and "waiting 1" in table.stdout

    runs = _lines(_cli("runs", "--json"))
    assert [r["id"] for r in runs] == sorted(ids.values(), reverse=True)  # newest first
    assert {r["key"]: r["state"] for r in runs} == {"userId:done": "completed", "userId:waits": "waiting",
                                                     "userId:buys": "exited"}
    [waiting] = _lines(_cli("runs", "--state", "waiting", "--json"))
    assert waiting["id"] == ids["waits"] and waiting["position"] == "0"
    assert _lines(_cli("runs", "--workflow", "idle", "--json")) == []
    assert _cli("runs", "--workflow", "idle").stdout.strip() == "no runs"
    assert "userId:buys" in _cli("runs").stdout

    done = _json(_cli("show", str(ids["done"])))
    assert done["state"] == "completed" and done["context"]["trigger"]["properties"] == {"products": ["done"]}
    assert [(s["position"], s["kind"], s["state"]) for s in done["steps"]] == [("0", "wait", "done"),
                                                                              ("1", "action", "done")]
    missing = _cli("show", "999")
    assert missing.exit_code == 1 and "no run 999" in missing.stderr

    cancelled = _cli("cancel", str(ids["waits"]))
    assert cancelled.exit_code == 0 and cancelled.stdout.strip() == f"run {ids['waits']} cancelled"
    again = _cli("cancel", str(ids["waits"]))
    assert again.exit_code == 1 and "is not active" in again.stderr
    ended = _cli("cancel", str(ids["done"]))
    assert ended.exit_code == 1
    shown = _json(_cli("show", str(ids["waits"])))
    assert shown["state"] == "cancelled" and shown["due_at"] is None

    journal = Journal(database_url)  # the engine, later: the cancelled run takes no step
    try:
        w = World(journal, load_settings(config))
        w.clock.now += 5 * HOUR
        await w.run()
        assert w.sent() == []
        assert {r.run_key: r.state for r in w.all_runs()}["userId:waits"] == "cancelled"
    finally:
        journal.close()
