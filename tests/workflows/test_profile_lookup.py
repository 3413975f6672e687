"""A lookup step reads the profile sgbridge keeps and, when configured, Segment's Profile API
(the Segment emulator here, through ASGITransport); the mapping of a later action sees it."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from sgbridge.destinations.workflows import WorkflowIntake
from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.journal import Journal
from sgbridge.journal.workflow_runs import WorkflowRuns
from sgbridge.model import StoredEvent
from sgbridge.settings import Settings
from sgbridge.workflows.engine import Engine, SimulatedActions, WorkflowRunner
from sgbridge.workflows.profile_api import ProfileApi

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _settings(**engine: Any) -> Settings:
    return Settings(
        actions={"sendgrid": {"destination": "sendgrid", "settings": {"sendGridApiKey": "SG.test"}}},
        workflow_engine=engine,
        workflows=[{"name": "welcome", "trigger": 'event = "Trial Started"', "steps": [
            {"lookup": "profile", "name": "profile"},
            {"action": "sendEmail", "destination": "sendgrid", "mapping": {
                "from": {"email": "team@example.com"}, "to": {"email": {"@path": "$.traits.email"}},
                "template_id": "d-11111111111111111111111111111111",
                "dynamic_template_data": {"plan": {"@path": "$.steps.profile.plan"},
                                          "company": {"@path": "$.steps.profile.company"}}}}]}])


def _event(seq: int, body: dict[str, Any]) -> StoredEvent:
    return StoredEvent(seq, "segment:api", str(body["type"]), time.time(), f"k{seq}".encode(), orjson.dumps(body))


async def _run(settings: Settings, journal: Journal, client: httpx.AsyncClient | None) -> list[dict[str, Any]]:
    clock = Clock()
    workflows = settings.compiled_workflows()
    runs = WorkflowRuns(journal)
    actions = SimulatedActions()
    api = ProfileApi(settings.workflow_engine, client) if client is not None else None
    runner = WorkflowRunner(Engine(workflows, runs, actions, settings.workflow_engine, api), runs,
                            settings.workflow_engine, clock=clock)
    intake = WorkflowIntake(settings, workflows, journal, clock=clock)
    await intake.deliver([_event(1, {"type": "identify", "userId": "u-1", "traits": {"email": "ada@example.com",
                                                                                      "plan": "free"}}),
                          _event(2, {"type": "track", "userId": "u-1", "event": "Trial Started"})])
    assert await runner.run_once() == 1
    assert [r.state for r in runs.list_runs()] == ["completed"]
    return actions.performed


async def test_lookup_reads_the_profile_sgbridge_keeps(database_url: str) -> None:
    journal = Journal(database_url)
    try:
        performed = await _run(_settings(), journal, None)
    finally:
        journal.close()
    assert [a["payload"]["dynamic_template_data"] for a in performed] == [{"plan": "free"}]
    assert performed[0]["payload"]["to"] == {"email": "ada@example.com"}


async def test_lookup_reads_segments_profile_api_over_its_own(tmp_path: Path) -> None:
    segment = create_segment_emulator(write_keys=["wk"], profile_tokens={"spa_1": "tok"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=segment), base_url="http://segment") as client:
        auth = {"Authorization": "Basic " + base64.b64encode(b"wk:").decode()}
        # Segment knows more of u-1 than sgbridge does (traits set by other sources).
        response = await client.post("/v1/identify", headers=auth, content=orjson.dumps(
            {"userId": "u-1", "traits": {"plan": "enterprise", "company": "Initech"}}))
        assert response.status_code == 200
        settings = _settings(profile_api_space="spa_1", profile_api_token=SecretStr("tok"),
                             profile_api_endpoint="http://segment")
        journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}")
        try:
            performed = await _run(settings, journal, client)
        finally:
            journal.close()
    assert segment.state.emulator.state.profiles.lookups == 1
    assert [a["payload"]["dynamic_template_data"] for a in performed] == [{"plan": "enterprise", "company": "Initech"}]
