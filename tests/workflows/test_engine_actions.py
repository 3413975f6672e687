"""Action steps sent for real (LiveActions) to the SendGrid emulator through ASGITransport, on both
journals: the email goes out once with its mapped payload, a run taken over after a crash does
not send again, transient failures are retried with backoff up to ``action_attempts``, and a
rejection fails the run at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest

from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.journal import Journal
from tests.workflows.harness import (
    API_KEY,
    HOUR,
    SENDGRID_HOST,
    START,
    TEMPLATE,
    World,
    email_step,
    identify,
    live_actions,
    settings_of,
    track,
)

pytestmark = pytest.mark.anyio

CART = 'event = "Cart Abandoned"'
RECOVERY = [{"name": "recovery", "trigger": CART, "steps": [
    {"wait": "2h"},
    email_step("mail", products={"@path": "$.properties.products"}, first_name={"@path": "$.traits.first_name"})]}]
PRODUCTS = [{"sku": "tee-42", "name": "T-shirt"}]


class Live:
    def __init__(self, world: World, sendgrid: httpx.AsyncClient) -> None:
        self.w = world
        self.sendgrid = sendgrid

    async def mail(self) -> list[dict[str, Any]]:
        response = await self.sendgrid.get("/_emulator/mail")
        response.raise_for_status()
        return list(response.json()["messages"])

    async def requests(self, path: str) -> list[int]:
        response = await self.sendgrid.get("/_emulator/requests", params={"path": path})
        response.raise_for_status()
        return [r["status"] for r in response.json()["requests"]]

    async def fault(self, **spec: Any) -> None:
        (await self.sendgrid.post("/_emulator/faults", json=spec)).raise_for_status()


@asynccontextmanager
async def live(database_url: str, workflows: list[dict[str, Any]], **engine: Any) -> AsyncIterator[Live]:
    app = create_sendgrid_emulator([API_KEY], job_delay_seconds=0.0, templates={TEMPLATE: "Recovery"})
    transport = httpx.ASGITransport(app=app)
    journal = Journal(database_url)
    try:
        async with (httpx.AsyncClient(transport=transport) as client,
                    httpx.AsyncClient(transport=transport, base_url=f"http://{SENDGRID_HOST}") as sendgrid):
            w = World(journal, settings_of(workflows, **engine))
            live_actions(w, client)
            yield Live(w, sendgrid)
    finally:
        journal.close()


async def _cart(h: Live, user: str = "u-ada", email: str = "ada@example.com") -> None:
    await h.w.send(identify(user, email=email, first_name="Ada"), track(user, "Cart Abandoned", products=PRODUCTS))
    await h.w.run()


async def test_email_is_sent_once_with_the_mapped_payload(database_url: str) -> None:
    async with live(database_url, RECOVERY) as h:
        await _cart(h)
        assert await h.mail() == []
        await h.w.later(2 * HOUR)
        run = h.w.only_run()
        steps = h.w.steps(run)
        await h.w.later(2 * HOUR)  # nothing more to do
        mail = await h.mail()
    [message] = mail
    request = message["request"]
    assert request["from"] == {"email": "shop@example.com"} and request["template_id"] == TEMPLATE
    [personalization] = request["personalizations"]
    assert personalization["to"] == [{"email": "ada@example.com"}]
    assert personalization["dynamic_template_data"] == {"products": PRODUCTS, "first_name": "Ada"}
    assert personalization["custom_args"]["segment_message_id"] == f"wf-recovery-{run.id}-1"
    assert personalization["custom_args"]["segment_user_id"] == "u-ada"
    assert run.state == "completed"
    assert steps["1"]["state"] == "done" and steps["1"]["output"]["sg_message_id"] == message["message_id"]
    assert steps["1"]["at"] == START + 2 * HOUR


async def test_run_taken_over_after_a_crash_does_not_send_again(database_url: str) -> None:
    """A process sends the email and dies before writing the run back (its step row 'started');
    once the lease passed another process takes the run over: no second email."""
    async with live(database_url, RECOVERY, lease_seconds=60) as h:
        await _cart(h)
        h.w.clock.now += 2 * HOUR
        [run] = await h.w.runs.claim_due(h.w.clock(), 10, "dead-process", 60)
        await h.w.engine.advance(run, h.w.clock(), h.w.clock())  # sent; never written back
        assert len(await h.mail()) == 1
        assert h.w.steps(run)["1"]["state"] == "started"
        await h.w.jump(30)
        assert h.w.only_run().state == "running"  # the lease holds
        await h.w.jump(31)
        after = h.w.only_run()
        mail = await h.mail()
        steps = h.w.steps(after)
    assert len(mail) == 1
    assert after.state == "completed"
    assert steps["1"]["state"] == "done"


async def test_write_back_of_a_process_whose_run_was_taken_over_is_refused(database_url: str) -> None:
    async with live(database_url, RECOVERY, lease_seconds=60) as h:
        await _cart(h)
        h.w.clock.now += 2 * HOUR
        [run] = await h.w.runs.claim_due(h.w.clock(), 10, "slow-process", 60)
        slow = await h.w.engine.advance(run, h.w.clock(), h.w.clock())
        await h.w.jump(61)  # the other process takes it over meanwhile
        refused = await h.w.runs.write_back(run, "slow-process", slow, h.w.clock())
        after = h.w.only_run()
        mail = await h.mail()
    assert refused is None
    assert after.state == "completed" and after.owner is None
    assert len(mail) == 1


async def test_a_step_recorded_done_is_not_done_again(database_url: str) -> None:
    """A run re-advanced at an action step whose row says 'done' (taken over after the step
    finished) goes on with the recorded output, without a request."""
    workflows = [{"name": "profile", "trigger": CART, "steps": [
        {"action": "updateUserProfile", "destination": "sendgrid", "name": "upsert"}]}]
    async with live(database_url, workflows, lease_seconds=60) as h:
        await h.w.send(identify("u-ada", email="ada@example.com", first_name="Ada"))
        [seq] = await h.w.send(track("u-ada", "Cart Abandoned"))
        [run] = await h.w.runs.claim_due(h.w.clock(), 10, "dead-process", 60)
        first = await h.w.engine.advance(run, h.w.clock(), h.w.clock())  # the upsert went out; then a crash
        puts = await h.requests("/v3/marketing/contacts")
        # What a process that finished the step, then died before moving the run on, leaves behind.
        done = first.steps[-1]
        h.w.journal.run_sync(lambda conn: conn.execute(h.w.runs.q(
            "UPDATE wf_steps SET state = 'done', output = ? WHERE run_id = ? AND position = '0'"),
            (orjson.dumps(done[4]).decode(), run.id)))
        await h.w.jump(61)
        after = h.w.only_run()
        steps = h.w.steps(after)
        again = await h.requests("/v3/marketing/contacts")
    assert seq == run.trigger_seq
    assert puts == [202] and again == [202]
    assert after.state == "completed" and steps["0"]["output"] == done[4]


async def test_rate_limited_email_is_retried_with_backoff(database_url: str) -> None:
    async with live(database_url, [{"name": "now", "trigger": CART, "steps": [email_step("mail")]}],
                    backoff_initial_seconds=10, backoff_max_seconds=300, action_attempts=5) as h:
        await h.fault(status=429, count=2, path="/v3/mail/send")
        await _cart(h)
        first = h.w.only_run()
        await h.w.later(9)
        assert await h.requests("/v3/mail/send") == [429]
        await h.w.later(1)  # the first retry, 10 s after
        second = h.w.only_run()
        await h.w.later(20)  # the second, 20 s after that
        after = h.w.only_run()
        steps = h.w.steps(after)
        statuses = await h.requests("/v3/mail/send")
        mail = await h.mail()
    assert (first.state, first.due_at) == ("ready", START + 10)
    assert (second.state, second.due_at) == ("ready", START + 30)
    assert statuses == [429, 429, 202] and len(mail) == 1
    assert after.state == "completed" and steps["0"]["state"] == "done"


async def test_transient_failures_past_action_attempts_fail_the_run(database_url: str) -> None:
    workflows = [{"name": "profile", "trigger": CART, "steps": [
        {"action": "updateUserProfile", "destination": "sendgrid", "name": "upsert"}, email_step("mail")]}]
    async with live(database_url, workflows, backoff_initial_seconds=5, backoff_max_seconds=8,
                    action_attempts=3) as h:
        await h.fault(status=500, count=10, path="/v3/marketing/contacts")
        await _cart(h)
        dues = [h.w.only_run().due_at]
        await h.w.later(5)
        dues.append(h.w.only_run().due_at)
        await h.w.later(8)
        run = h.w.only_run()
        steps = h.w.steps(run)
        statuses = await h.requests("/v3/marketing/contacts")
        mail = await h.mail()
    assert dues == [START + 5, START + 13]  # 5 s, then 10 s capped at 8
    assert statuses == [500, 500, 500]
    assert run.state == "failed" and run.due_at is None
    assert run.detail is not None and run.detail.startswith("step upsert: not done after 3 tries; last: HTTP 500")
    assert steps["0"]["state"] == "failed" and steps["0"]["output"]["attempt"] == 3
    assert mail == [] and "1" not in steps


async def test_server_error_on_an_upsert_is_retried_until_it_works(database_url: str) -> None:
    workflows = [{"name": "profile", "trigger": CART, "steps": [
        {"action": "updateUserProfile", "destination": "sendgrid", "name": "upsert"}]}]
    async with live(database_url, workflows, backoff_initial_seconds=5, action_attempts=3) as h:
        await h.fault(status=503, count=2, path="/v3/marketing/contacts")
        await _cart(h)
        await h.w.later(60)
        run = h.w.only_run()
        statuses = await h.requests("/v3/marketing/contacts")
        contacts = (await h.sendgrid.get("/_emulator/contacts")).json()["contacts"]
    assert statuses == [503, 503, 202]
    assert run.state == "completed"
    assert [c["email"] for c in contacts] == ["ada@example.com"]


async def test_server_error_on_an_email_is_held_not_sent_again(database_url: str) -> None:
    """A 5xx to a mail send may have been accepted: the run fails 'held for review' at once
    (the sendEmail guard), and nothing is sent again."""
    async with live(database_url, [{"name": "now", "trigger": CART, "steps": [email_step("mail")]}],
                    backoff_initial_seconds=1) as h:
        await h.fault(status=500, count=1, path="/v3/mail/send", process=True)
        await _cart(h)
        await h.w.later(HOUR)
        run = h.w.only_run()
        statuses = await h.requests("/v3/mail/send")
        mail = await h.mail()
    assert run.state == "failed" and "held for review" in str(run.detail)
    assert statuses == [500] and len(mail) == 1  # SendGrid took it; the answer was lost


async def test_rejected_email_fails_the_run_at_once(database_url: str) -> None:
    workflows = [{"name": "now", "trigger": CART, "steps": [
        email_step("mail", template="d-00000000000000000000000000000000"), {"wait": "1h"}]}]
    async with live(database_url, workflows) as h:
        await _cart(h)
        run = h.w.only_run()
        steps = h.w.steps(run)
        await h.w.later(HOUR)
        statuses = await h.requests("/v3/mail/send")
    assert run.state == "failed" and run.due_at is None
    assert run.detail is not None and run.detail.startswith("step mail: rejected: ")
    assert "template_id" in run.detail
    assert steps["0"]["state"] == "failed" and "1" not in steps
    assert statuses == [400]
