"""Template 4 (examples/workflows/suppressions-both-ways.toml, loaded as shipped), live against the
SendGrid and Segment emulators through ASGITransport, on both journals: SendGrid's opt-outs reach
Segment as identify calls with the traits they set; Segment's opt-outs and opt-ins reach SendGrid's
global list and an unsubscribe group; what sgbridge sent to Segment, come back, changes nothing
(no ping-pong)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.journal import Journal
from sgbridge.settings import load_settings
from sgbridge.workflows.engine import LiveActions
from tests.workflows.harness import API_KEY, HOUR, START, World, identify, sendgrid_event, track

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workflows" / "suppressions-both-ways.toml"
GROUP = 42  # the example's group
SENDGRID, SEGMENT = "http://sendgrid.test", "http://segment.test"


class Both:
    def __init__(self, w: World, sendgrid: httpx.AsyncClient, segment: httpx.AsyncClient) -> None:
        self.w, self.sendgrid, self.segment = w, sendgrid, segment

    async def identifies(self) -> list[dict[str, Any]]:
        response = await self.segment.get("/_emulator/messages", params={"type": "identify"})
        return list(response.json()["messages"])

    async def suppressions(self) -> dict[str, Any]:
        return dict((await self.sendgrid.get("/_emulator/suppressions")).json())

    async def suppression_requests(self) -> list[tuple[str, str]]:
        found = (await self.sendgrid.get("/_emulator/requests")).json()["requests"]
        return [(r["method"], r["path"]) for r in found if r["path"].startswith("/v3/asm")]


@asynccontextmanager
async def both(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Both]:
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)  # the example's key comes from the environment
    sendgrid_app = create_sendgrid_emulator([API_KEY], job_delay_seconds=0.0)
    segment_app = create_segment_emulator(write_keys=["wk"])
    mounts = {SENDGRID: httpx.ASGITransport(app=sendgrid_app), SEGMENT: httpx.ASGITransport(app=segment_app)}
    journal = Journal(database_url)
    try:
        async with (httpx.AsyncClient(mounts=mounts) as client,
                    httpx.AsyncClient(transport=mounts[SENDGRID], base_url=SENDGRID,
                                      headers={"Authorization": f"Bearer {API_KEY}"}) as sendgrid,
                    httpx.AsyncClient(transport=mounts[SEGMENT], base_url=SEGMENT) as segment):
            for n in range(GROUP):  # the account's groups, up to the example's
                (await sendgrid.post("/v3/asm/groups", json={"name": f"group {n + 1}",
                                                             "description": "d"})).raise_for_status()
            await sendgrid.delete("/_emulator/requests")
            w = World(journal, load_settings(EXAMPLE))
            port = LiveActions(w.workflows, w.settings.actions, journal, client, endpoint=SENDGRID,
                               segment_url=SEGMENT, write_key="wk")
            w.port = w.engine.actions = port
            yield Both(w, sendgrid, segment)
    finally:
        journal.close()


def _group_members(suppressions: dict[str, Any]) -> list[str]:
    groups = suppressions["groups"]
    found = groups.get(str(GROUP), groups.get(GROUP)) if isinstance(groups, dict) else next(
        (g for g in groups if g.get("id") == GROUP), None)
    if isinstance(found, dict):
        found = found.get("emails", found.get("members"))
    return sorted(found or [])


async def test_sendgrid_opt_outs_reach_segment_with_the_traits_they_set(database_url: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    async with both(database_url, monkeypatch) as h:
        await h.w.send(sendgrid_event("unsubscribe", "Ada@Example.com", START, user="u-ada"))
        await h.w.send(sendgrid_event("group_unsubscribe", "bob@example.com", START + 1, asm_group_id=GROUP))
        await h.w.send(sendgrid_event("spamreport", "cy@example.com", START + 2))
        await h.w.send(sendgrid_event("bounce", "dee@example.com", START + 3, type="bounce", reason="550"))
        await h.w.run()
        first = await h.identifies()
        await h.w.send(sendgrid_event("group_resubscribe", "bob@example.com", START + HOUR, asm_group_id=GROUP))
        await h.w.send(sendgrid_event("open", "bob@example.com", START + HOUR))  # not an opt-out: nothing
        await h.w.run()
        sent = await h.identifies()
        profile = await h.w.runs.profile("email:bob@example.com")
        to_sendgrid = await h.suppression_requests()
    by_email = [(m["traits"].get("email"), {k: v for k, v in m["traits"].items() if k != "email"}) for m in sent]
    assert len(first) == 4
    assert by_email == [("ada@example.com", {"unsubscribed": True}),
                        ("bob@example.com", {f"unsubscribed_group_{GROUP}": True}),
                        ("cy@example.com", {"spam_reported": True}),
                        ("dee@example.com", {"email_bounced": True}),
                        ("bob@example.com", {f"unsubscribed_group_{GROUP}": False})]
    assert sent[0]["userId"] == "u-ada"  # the email's segment_user_id; the others by their anonymousId
    assert all(m["context"]["library"]["name"] == "sgbridge-workflows" for m in sent)
    assert profile["unsubscribed_groups"] == [] and profile[f"unsubscribed_group_{GROUP}"] is False
    assert to_sendgrid == []  # what came from SendGrid is not sent back to it


async def test_what_sgbridge_sent_to_segment_coming_back_changes_nothing(database_url: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    async with both(database_url, monkeypatch) as h:
        await h.w.send(sendgrid_event("unsubscribe", "ada@example.com", START, user="u-ada"))
        await h.w.run()
        [echo] = await h.identifies()
        runs_before = len(h.w.all_runs())
        # Segment sends sgbridge's identify on to sgbridge's /webhooks/segment, and its track call too
        await h.w.send(echo, {"type": "track", "userId": "u-ada", "event": "Unsubscribed",
                              "properties": {"email": "ada@example.com"},
                              "context": {"library": {"name": "sgbridge", "version": "0.1.0"},
                                          "traits": {"email": "ada@example.com"}}})
        await h.w.run()
        runs_after = len(h.w.all_runs())
        to_sendgrid = await h.suppression_requests()
        to_segment = await h.identifies()
    assert echo["traits"] == {"unsubscribed": True, "email": "ada@example.com"}
    assert runs_before == runs_after == 1
    assert to_sendgrid == [] and len(to_segment) == 1


async def test_segment_opt_outs_and_opt_ins_reach_sendgrid_and_nothing_goes_back(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with both(database_url, monkeypatch) as h:
        await h.w.send(identify("u-ada", email="ada@example.com", unsubscribed=True),
                       identify("u-bob", email="bob@example.com", email_opt_in=False),
                       identify("u-cy", email="cy@example.com", newsletter_opt_in=False),
                       identify("u-dee", email="dee@example.com", plan="pro"),  # no opt-out trait
                       track("u-eve", "Unsubscribed", email="eve@example.com"))  # Segment's own track: no
        await h.w.run()
        out = await h.suppressions()
        await h.w.send(identify("u-ada", email="ada@example.com", unsubscribed=False),
                       identify("u-cy", email="cy@example.com", **{f"unsubscribed_group_{GROUP}": False}))
        await h.w.run()
        back_in = await h.suppressions()
        to_segment = await h.identifies()
        states = {r.workflow: r.state for r in h.w.all_runs()}
    assert sorted(out["global"]) == ["ada@example.com", "bob@example.com"]
    assert _group_members(out) == ["cy@example.com"]
    assert sorted(back_in["global"]) == ["bob@example.com"] and _group_members(back_in) == []
    assert to_segment == []  # what came from Segment is not sent back to it
    assert set(states.values()) == {"completed"} and "opt-outs-to-segment" not in states


def test_workflows_test_on_the_example_sends_each_change_to_the_other_side_only() -> None:
    from click.testing import CliRunner

    from sgbridge.cli import main

    result = CliRunner().invoke(main, ["workflows", "test", "--config", str(EXAMPLE),
                                       "--events", str(EXAMPLE.with_suffix(".events.json"))])
    assert result.exit_code == 0, result.output
    done = [(a["action"], a["payload"].get("traits") or a["payload"])
            for r in orjson.loads(result.stdout)["runs"] for a in r["actions"]]
    assert done == [
        ("segment.identify", {"unsubscribed": True, "email": "ada@example.com"}),
        ("segment.identify", {f"unsubscribed_group_{GROUP}": True, "email": "bob@example.com"}),
        ("segment.identify", {f"unsubscribed_group_{GROUP}": False, "email": "bob@example.com"}),
        # the file's echo of the first identify (library sgbridge-workflows) starts nothing
        ("sendgrid.addSuppression", {"email": "cy@example.com"}),
        ("sendgrid.addSuppression", {"email": "dee@example.com", "group_id": GROUP}),
        ("sendgrid.removeSuppression", {"email": "dee@example.com", "group_id": GROUP})]
