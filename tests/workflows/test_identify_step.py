"""The identify step sends traits to Segment (the Segment emulator, through ASGITransport): once
per run and step by its messageId, even when the step is done again after a takeover."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.workflows.engine import LiveActions
from tests.workflows.harness import World, identify, track, world

pytestmark = pytest.mark.anyio

ONBOARDING = [{"name": "onboarding", "trigger": 'event = "User Signed Up"', "steps": [
    {"identify": {"traits": {"plan": {"@path": "$.properties.plan"}, "onboarding_stage": "signed_up",
                             "first_name": {"@path": "$.traits.first_name"}}}, "name": "stage"}]}]


def _live(w: World, client: httpx.AsyncClient, write_key: str | None = "wk") -> None:
    port = LiveActions(w.workflows, w.settings.actions, w.journal, client, segment_url="http://segment",
                       write_key=write_key)
    w.port = port
    w.engine.actions = port


async def _messages(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    return list((await client.get("/_emulator/messages", params={"type": "identify"})).json()["messages"])


async def test_identify_sends_the_mapped_traits_to_segment_once(database_url: str) -> None:
    segment = create_segment_emulator(write_keys=["wk"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=segment), base_url="http://segment") as client:
        with world(database_url, ONBOARDING) as w:
            _live(w, client)
            await w.send(identify("u1", first_name="Ada"), track("u1", "User Signed Up", plan="pro"))
            [run] = await w.runs.claim_due(w.clock(), 10, "dead-owner", 60)
            await w.engine.advance(run, w.clock(), w.clock())  # sent, then its process died before writing back
            await w.jump(61)  # the lease passed: another process does the run again
            done = w.only_run()
            steps = w.steps(done)
        sent = await _messages(client)
    assert done.state == "completed"
    assert len(sent) == 1, sent  # Segment dropped the second by its messageId
    assert sent[0]["userId"] == "u1"
    assert sent[0]["traits"] == {"plan": "pro", "onboarding_stage": "signed_up", "first_name": "Ada"}
    assert sent[0]["messageId"] == f"wf-onboarding-{done.id}-0" == steps["0"]["output"]["messageId"]
    assert sent[0]["context"]["library"]["name"] == "sgbridge-workflows"


async def test_identify_without_a_write_key_or_rejected_fails_the_run_with_the_reason(database_url: str) -> None:
    segment = create_segment_emulator(write_keys=["wk"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=segment), base_url="http://segment") as client:
        with world(database_url, ONBOARDING) as w:
            _live(w, client, write_key=None)
            await w.send(track("u1", "User Signed Up", plan="pro"))
            await w.run()
            no_key = w.only_run(key="userId:u1")
            _live(w, client, write_key="not-a-key")  # Segment answers 401
            await w.send(track("u2", "User Signed Up", plan="pro"))
            await w.run()
            refused = w.only_run(key="userId:u2")
        assert await _messages(client) == []
    assert no_key.state == "failed" and "SEGMENT_WRITE_KEY" in str(no_key.detail)
    assert refused.state == "failed" and "401" in str(refused.detail)


async def test_identify_is_retried_when_segment_is_unavailable(database_url: str) -> None:
    segment = create_segment_emulator(write_keys=["wk"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=segment), base_url="http://segment") as client:
        await client.post("/_emulator/faults", json={"status": 503, "count": 1, "path": "/v1/batch"})
        with world(database_url, ONBOARDING) as w:
            _live(w, client)
            await w.send(track("u1", "User Signed Up", plan="pro"))
            await w.run()
            waiting = w.only_run()
            await w.later(5)
            done = w.only_run()
        sent = await _messages(client)
    assert waiting.state == "ready" and waiting.due_at is not None and waiting.due_at > w.clock() - 5
    assert done.state == "completed" and len(sent) == 1


async def test_the_runner_reports_the_timers_pending(database_url: str) -> None:
    import asyncio

    from prometheus_client import REGISTRY

    from sgbridge.delivery import metrics

    metrics.WORKFLOW_TIMERS_PENDING.set(-1)  # not what an earlier test left
    waits = [{"name": "waits", "trigger": 'event = "Cart Abandoned"', "steps": [{"wait": "1h"}, {"exit": "done"}]}]
    with world(database_url, waits) as w:
        await w.send(track("u1", "Cart Abandoned"), track("u2", "Cart Abandoned"), track("u3", "Other"))
        await w.run()
        looping = asyncio.create_task(w.runner.run())
        for _ in range(100):
            if REGISTRY.get_sample_value("sgbridge_workflow_timers_pending") == 2:
                break
            await asyncio.sleep(0.02)
        w.runner.stop()
        await looping
    assert REGISTRY.get_sample_value("sgbridge_workflow_timers_pending") == 2
