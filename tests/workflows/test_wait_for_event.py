"""A wait_for whose match is found when the runner writes the run back (the event came while the
run was taken up) still hands the event itself to the steps after it, read from the log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from sgbridge.destinations.workflows import WorkflowIntake
from sgbridge.journal import Journal
from sgbridge.journal.workflow_runs import WorkflowRuns
from sgbridge.model import InboundEvent, InboundRequest, StoredEvent
from sgbridge.settings import Settings
from sgbridge.workflows.engine import Engine, SimulatedActions, WorkflowRunner

pytestmark = pytest.mark.anyio


async def _append(journal: Journal, body: dict[str, Any]) -> StoredEvent:
    raw = orjson.dumps(body)
    event = InboundEvent("segment:api", str(body["type"]), None, f"fp-{body['messageId']}".encode(), raw)
    await journal.append(InboundRequest("segment:api", time.time(), len(raw), [event]))
    window = await journal.claim_window("reader", "t", 1, 30)
    assert window is not None
    await journal.complete_window(window, [])
    return window.events[0]


async def test_a_match_found_at_write_back_carries_the_event(database_url: str) -> None:
    settings = Settings(actions={"sendgrid": {"destination": "sendgrid", "settings": {"sendGridApiKey": "SG.x"}}},
                        workflows=[{"name": "onboarding", "trigger": 'event = "Signed Up"', "steps": [
                            {"wait_for": 'event = "Integration Connected"', "timeout": "3d", "name": "connected"},
                            {"action": "sendEmail", "destination": "sendgrid", "mapping": {
                                "from": {"email": "team@example.com"}, "to": {"email": "ada@example.com"},
                                "template_id": "d-22222222222222222222222222222222",
                                "dynamic_template_data": {
                                    "integration": {"@path": "$.steps.connected.event.properties.kind"}}}}]}])
    journal = Journal(database_url)
    try:
        workflows = settings.compiled_workflows()
        runs = WorkflowRuns(journal)
        actions = SimulatedActions()
        engine = Engine(workflows, runs, actions, settings.workflow_engine)
        runner = WorkflowRunner(engine, runs, settings.workflow_engine)
        intake = WorkflowIntake(settings, workflows, journal)
        await intake.deliver([await _append(journal, {"type": "track", "userId": "u1", "event": "Signed Up",
                                                      "messageId": "m1"})])
        [run] = await runs.claim_due(time.time(), 10, "owner", 60)
        await intake.deliver([await _append(journal, {"type": "track", "userId": "u1", "messageId": "m2",
                                                      "event": "Integration Connected",
                                                      "properties": {"kind": "slack"}})])
        result = await engine.advance(run, time.time(), time.time())
        assert result.state == "waiting"  # the engine had not seen the event: the write-back finds it
        assert await runs.write_back(run, "owner", result, time.time()) == "ready"
        assert await runner.run_once() == 1
        assert [r.state for r in runs.list_runs()] == ["completed"]
    finally:
        journal.close()
    assert [a["payload"]["dynamic_template_data"] for a in actions.performed] == [{"integration": "slack"}]


async def test_events_show_follows_an_event_into_the_workflows(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sgbridge.cli import main

    url = f"sqlite:///{tmp_path / 'journal.db'}"
    config = tmp_path / "sgbridge.toml"
    config.write_text(f'database_url = "{url}"\n[[workflows]]\nname = "w"\ntrigger = \'event = "Signed Up"\'\n'
                      'steps = [{ exit = "done" }]\n')
    journal = Journal(url)
    try:
        raw = orjson.dumps({"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "m-show"})
        await journal.append(InboundRequest("segment:api", time.time(), len(raw),
                                            [InboundEvent("segment:api", "track", None, b"fp-show", raw)]))
        window = await journal.claim_window("workflows", "t", 10, 30)  # as the intake's worker claims
        assert window is not None
        await journal.complete_window(window, [])
    finally:
        journal.close()
    shown = CliRunner().invoke(main, ["events", "show", "1", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert orjson.loads(shown.output)["destinations"]["workflows"]["outcome"] == "delivered"
