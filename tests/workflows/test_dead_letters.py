"""A failed run is a dead letter (destination ``workflow:<name>``, its trigger event), listed and
replayed like any other: the replay goes on from the step that failed, with its tries counted
afresh; an email held for review is sent again only on that replay; the dead letter ends
``delivered`` once the run ends well, and is a dead letter again if it fails again. Live against
the SendGrid emulator (ASGITransport), on both journals."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from sgbridge.cli import main
from tests.workflows.harness import HOUR, email_step, identify, track
from tests.workflows.test_engine_actions import CART, Live, _cart, live

pytestmark = pytest.mark.anyio

UPSERT_THEN_MAIL = [{"name": "profile", "trigger": CART, "steps": [
    {"action": "updateUserProfile", "destination": "sendgrid", "name": "upsert"}, email_step("mail")]}]


def _dead(h: Live, destination: str | None = None) -> list[dict[str, Any]]:
    return h.w.journal.dead_letters(destination)


def _outcome(h: Live, seq: int, destination: str) -> tuple[str, str]:
    row = h.w.journal.run_sync(lambda conn: conn.execute(h.w.journal.q(
        "SELECT status, reason FROM outcomes WHERE destination = ? AND seq = ?"), (destination, seq)).fetchone())
    assert row is not None
    return str(row[0]), str(row[1])


async def _replay(h: Live, *ids: int) -> int:
    assert h.w.journal.request_replay(ids) == len(ids)
    taken = await h.w.runner.take_replays()
    await h.w.run()
    return taken


async def test_a_run_failed_after_its_tries_is_a_dead_letter_and_its_replay_goes_on_from_the_failed_step(
        database_url: str) -> None:
    async with live(database_url, UPSERT_THEN_MAIL, backoff_initial_seconds=5, backoff_max_seconds=5,
                    action_attempts=2) as h:
        await h.fault(status=500, count=2, path="/v3/marketing/contacts")
        await _cart(h)
        await h.w.later(60)
        failed = h.w.only_run()
        [letter] = _dead(h)
        assert await h.mail() == []
        taken = await _replay(h, letter["id"])
        after = h.w.only_run()
        steps = h.w.steps(after)
        statuses = await h.requests("/v3/marketing/contacts")
        mail = await h.mail()
        status, reason = _outcome(h, failed.trigger_seq, "workflow:profile")
        left = _dead(h)
    assert failed.state == "failed"
    assert letter["destination"] == "workflow:profile" and letter["seq"] == failed.trigger_seq
    assert letter["status"] == "rejected" and letter["event"] == "Cart Abandoned"
    assert letter["reason"].startswith(f"run {failed.id}: step upsert: not done after 2 tries; last: HTTP 500")
    assert taken == 1
    assert statuses == [500, 500, 202]  # the replay tried the upsert again, once more was enough
    assert after.id == failed.id and after.state == "completed"
    assert steps["0"]["state"] == "done" and steps["1"]["state"] == "done" and len(mail) == 1
    assert status == "delivered" and reason == f"run {failed.id} completed after a replay"
    assert left == []


async def test_a_replay_that_fails_again_is_a_dead_letter_again_with_its_tries_counted_afresh(
        database_url: str) -> None:
    async with live(database_url, UPSERT_THEN_MAIL, backoff_initial_seconds=5, backoff_max_seconds=5,
                    action_attempts=2) as h:
        await h.fault(status=500, count=10, path="/v3/marketing/contacts")
        await _cart(h)
        await h.w.later(60)
        [first] = _dead(h)
        await _replay(h, first["id"])
        await h.w.later(60)
        [second] = _dead(h)
        statuses = await h.requests("/v3/marketing/contacts")
        run = h.w.only_run()
    assert statuses == [500] * 4  # two tries, then two more on the replay
    assert run.state == "failed"
    assert second["id"] == first["id"] and second["status"] == "rejected"
    assert "not done after 2 tries" in second["reason"] and second["attempts"] == first["attempts"] + 1


async def test_an_email_held_for_review_is_sent_again_only_when_its_dead_letter_is_replayed(
        database_url: str) -> None:
    async with live(database_url, [{"name": "now", "trigger": CART, "steps": [email_step("mail")]}],
                    backoff_initial_seconds=1) as h:
        await h.fault(status=500, count=1, path="/v3/mail/send", process=True)
        await _cart(h)
        await h.w.later(HOUR)
        [letter] = _dead(h)
        before = await h.mail()
        await _replay(h, letter["id"])
        run = h.w.only_run()
        statuses = await h.requests("/v3/mail/send")
        after = await h.mail()
    assert letter["status"] == "held" and "held for review" in letter["reason"]
    assert len(before) == 1  # SendGrid took it; its answer was lost: nothing more until an operator says so
    assert statuses == [500, 202] and len(after) == 2
    assert run.state == "completed"


async def test_a_replay_waits_while_the_key_has_another_active_run(database_url: str) -> None:
    workflows = [{"name": "recovery", "trigger": CART, "steps": [
        {"action": "updateUserProfile", "destination": "sendgrid", "name": "upsert"}, {"wait": "2h"}]}]
    async with live(database_url, workflows, action_attempts=1) as h:
        await h.fault(status=400, count=1, path="/v3/marketing/contacts")
        await _cart(h)
        [letter] = _dead(h)
        await h.w.send(track("u-ada", "Cart Abandoned", products=[]))  # a second run for the key, waiting
        await h.w.run()
        await _replay(h, letter["id"])
        waiting = {r.id: r.state for r in h.w.all_runs()}
        status_while, _ = _outcome(h, letter["seq"], "workflow:recovery")
        await h.w.later(2 * HOUR)  # the second run completes: the replay goes on
        taken = await h.w.runner.take_replays()
        await h.w.later(2 * HOUR)
        ended = {r.id: r.state for r in h.w.all_runs()}
        status_after, _ = _outcome(h, letter["seq"], "workflow:recovery")
    first, second = sorted(waiting)
    assert waiting == {first: "failed", second: "waiting"} and status_while == "replay_requested"
    assert taken == 1 and ended == {first: "completed", second: "completed"} and status_after == "delivered"


async def test_dead_letters_cli_lists_and_replays_a_failed_run(database_url: str, tmp_path: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    workflows = [{"name": "now", "trigger": CART, "steps": [
        email_step("mail", template="d-00000000000000000000000000000000")]}]
    async with live(database_url, workflows) as h:
        await h.w.send(identify("u-ada", email="ada@example.com"), track("u-ada", "Cart Abandoned"))
        await h.w.run()
        monkeypatch.setenv("SGBRIDGE_DATABASE_URL", database_url)
        listed = CliRunner().invoke(main, ["dead-letters", "list", "--destination", "workflow:now", "--json"])
        config = tmp_path / "sgbridge.toml"
        config.write_text(f'database_url = "{database_url}"\n[[workflows]]\nname = "now"\n'
                          'trigger = \'event = "Cart Abandoned"\'\nsteps = [{ exit = "done" }]\n')
        shown = CliRunner().invoke(main, ["events", "show", "2", "--config", str(config)])
        replayed = CliRunner().invoke(main, ["dead-letters", "replay", "--all"])
        taken = await h.w.runner.take_replays()
        await h.w.run()
        [letter] = _dead(h)
    assert listed.exit_code == 0, listed.output
    [row] = [orjson.loads(line) for line in listed.output.splitlines()]
    assert row["destination"] == "workflow:now" and row["event"] == "Cart Abandoned" and row["status"] == "rejected"
    assert "template_id" in row["reason"]
    assert shown.exit_code == 0, shown.output
    [run] = orjson.loads(shown.output)["workflow_runs"]
    assert run["workflow"] == "now" and run["state"] == "failed" and run["dead_letter"] == row["id"]
    assert replayed.exit_code == 0, replayed.output
    assert taken == 1  # the replay ran the step again; the template is still unknown: a dead letter again
    assert letter["status"] == "rejected" and letter["attempts"] == 2
