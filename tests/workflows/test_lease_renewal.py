"""An action step that takes longer than the lease (a slow SendGrid) keeps its run: the runner
renews the lease of the runs it has in hand, so another process's runner, looking all along, does
not take the run over and do the step again. Real time, both journals, the SendGrid emulator
(ASGITransport) answering slowly."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.journal import Journal
from sgbridge.journal.workflow_runs import WorkflowRuns
from sgbridge.workflows.engine import Engine, LiveActions, WorkflowRunner
from tests.workflows.harness import API_KEY, SENDGRID_HOST, World, identify, settings_of, track

pytestmark = pytest.mark.anyio

LEASE = 1.5
SLOW = 4.0  # seconds SendGrid takes to answer the upsert: more than two leases


async def test_a_slow_action_keeps_its_run_and_is_done_once(database_url: str) -> None:
    workflows = [{"name": "slow", "trigger": 'event = "Signed Up"', "steps": [
        {"action": "updateUserProfile", "destination": "sendgrid", "name": "upsert"}]}]
    app = create_sendgrid_emulator([API_KEY], job_delay_seconds=0.0)
    transport = httpx.ASGITransport(app=app)
    journal = Journal(database_url)
    try:
        async with (httpx.AsyncClient(transport=transport) as client,
                    httpx.AsyncClient(transport=transport, base_url=f"http://{SENDGRID_HOST}") as sendgrid):
            settings = settings_of(workflows, lease_seconds=LEASE, poll_seconds=0.1)
            w = World(journal, settings)
            w.clock.now = time.time()
            await w.send(identify("u1", email="ada@example.com"), track("u1", "Signed Up"))
            (await sendgrid.post("/_emulator/faults", json={"delay": SLOW, "count": 1,
                                                            "path": "/v3/marketing/contacts"})).raise_for_status()
            runners = []
            for _ in range(2):  # two processes' runners on one journal, on the real clock
                runs = WorkflowRuns(journal)
                port = LiveActions(w.workflows, settings.actions, journal, client, endpoint=f"http://{SENDGRID_HOST}")
                runners.append(WorkflowRunner(Engine(w.workflows, runs, port, settings.workflow_engine), runs,
                                              settings.workflow_engine))
            tasks = [asyncio.create_task(r.run()) for r in runners]
            deadline = time.monotonic() + SLOW + 10
            while time.monotonic() < deadline and w.only_run().state != "completed":
                await asyncio.sleep(0.1)
            for r in runners:
                r.stop()
            await asyncio.gather(*tasks)
            run = w.only_run()
            found = (await sendgrid.get("/_emulator/requests", params={"path": "/v3/marketing/contacts"})).json()
    finally:
        journal.close()
    assert run.state == "completed"
    assert [r["method"] for r in found["requests"]] == ["PUT"]  # one upsert: nobody took the run over
