"""Template 2 (examples/workflows/audience-reconcile.toml, loaded as shipped): the SendGrid list's
members, read from a contacts export of the list in the SendGrid emulator (on a real socket: the
export client is blocking), compared with the membership the workflows' intake recorded from
Engage's events; the drift fixed both ways in SendGrid, reported, and kept in the run history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from sgbridge.cli import main
from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.emulators.serving import serve_in_thread
from sgbridge.journal import Journal
from sgbridge.settings import Settings, load_settings
from sgbridge.workflows.reconcile import Reconciler
from tests.workflows.harness import API_KEY, World

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workflows" / "audience-reconcile.toml"
AUDIENCE = "high_value_customers"


def engage(email: str, member: bool, kind: str = "identify") -> dict[str, Any]:
    """An Engage audience event, as Segment sends it to a destination."""
    context = {"personas": {"computation_class": "audience", "computation_key": AUDIENCE, "space_id": "spa_1"}}
    if kind == "identify":
        return {"type": "identify", "userId": f"u-{email.split('@')[0]}", "context": context,
                "traits": {"email": email, AUDIENCE: member}}
    event = "Audience Entered" if member else "Audience Exited"
    return {"type": "track", "userId": f"u-{email.split('@')[0]}", "event": event, "context": {
        **context, "traits": {"email": email}}, "properties": {"email": email, AUDIENCE: member}}


class Account:
    def __init__(self, url: str, world: World, settings: Settings) -> None:
        self.url, self.w, self.settings = url, world, settings
        self.api = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"})

    async def make_list(self, *emails: str) -> str:
        created = (await self.api.post("/v3/marketing/lists", json={"name": AUDIENCE})).json()
        await self.put(created["id"], *emails)
        return str(created["id"])

    async def put(self, list_id: str, *emails: str) -> None:
        if emails:
            (await self.api.put("/v3/marketing/contacts", json={
                "list_ids": [list_id], "contacts": [{"email": e} for e in emails]})).raise_for_status()
            await self.api.post("/_emulator/jobs/run")

    async def members(self, list_id: str) -> list[str]:
        await self.api.post("/_emulator/jobs/run")
        contacts = (await self.api.get("/_emulator/contacts")).json()["contacts"]
        return sorted(c["email"] for c in contacts if list_id in c.get("list_ids", []))

    async def reconcile(self, **options: Any) -> dict[str, Any] | None:
        async with httpx.AsyncClient() as client:
            return await Reconciler(self.settings, self.w.journal, client).run("high-value", **options)


def _settings(url: str, **changes: Any) -> Settings:
    settings = load_settings(EXAMPLE)
    settings.actions["sendgrid"] = settings.actions["sendgrid"].model_copy(update={"endpoint": url})
    settings.sync = settings.sync.model_copy(update={"export_poll_seconds": 0.05})
    if changes:
        settings.audience_reconcile[0] = settings.audience_reconcile[0].model_copy(update=changes)
    return settings


@pytest.fixture
def sendgrid_url() -> Iterator[str]:
    app = create_sendgrid_emulator([API_KEY], job_delay_seconds=0.0)
    with serve_in_thread(app) as url:
        yield url


@asynccontextmanager
async def account(database_url: str, url: str, monkeypatch: pytest.MonkeyPatch, **changes: Any
                  ) -> AsyncIterator[Account]:
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)  # the example's key comes from the environment
    settings = _settings(url, **changes)
    journal = Journal(database_url)
    try:
        found = Account(url, World(journal, settings), settings)
        yield found
        await found.api.aclose()
    finally:
        journal.close()


async def test_drift_is_fixed_both_ways_and_reported(database_url: str, sendgrid_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async with account(database_url, sendgrid_url, monkeypatch) as a:
        await a.w.send(engage("ada@example.com", True), engage("bob@example.com", True),
                       engage("cy@example.com", True, kind="track"),  # entered by a track call
                       engage("dee@example.com", True), engage("dee@example.com", False),  # entered, left
                       engage("eve@example.com", False))
        # SendGrid's list: Sync Audience's work, then hand edits: cy taken off, dee's removal lost,
        # fay and gus added by hand
        list_id = await a.make_list("ada@example.com", "bob@example.com", "dee@example.com", "fay@example.com",
                                    "gus@example.com")
        report = await a.reconcile()
        after = await a.members(list_id)
        again = await a.reconcile()
        history = a.w.journal.run_sync(lambda conn: conn.execute(
            "SELECT source, status, collections FROM sync_runs ORDER BY id").fetchall())
    assert report is not None and again is not None
    assert report["list_id"] == list_id and report["in_sendgrid"] == 5 and report["recorded"] == 3
    assert report["added"] == ["cy@example.com"]
    assert report["removed"] == ["dee@example.com", "fay@example.com", "gus@example.com"]
    assert report["to_add"] == 1 and report["to_remove"] == 3 and report["fixed"] is True
    assert after == ["ada@example.com", "bob@example.com", "cy@example.com"]
    assert again["to_add"] == again["to_remove"] == 0 and again["in_sendgrid"] == 3 and again["fixed"] is True
    assert [(s, st) for s, st, _ in history] == [("reconcile:high-value", "ok")] * 2
    assert orjson.loads(history[0][2])[0]["removed"] == report["removed"]


async def test_a_dry_run_or_more_drift_than_max_fixes_changes_nothing(database_url: str, sendgrid_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    async with account(database_url, sendgrid_url, monkeypatch, max_fixes=2) as a:
        await a.w.send(engage("ada@example.com", True))
        list_id = await a.make_list("bob@example.com")
        dry = await a.reconcile(dry_run=True)
        await a.put(list_id, "cy@example.com", "dee@example.com")
        capped = await a.reconcile()
        members = await a.members(list_id)
    assert dry is not None and capped is not None
    assert dry["added"] == ["ada@example.com"] and dry["removed"] == ["bob@example.com"]
    assert dry["fixed"] is False and dry["not_fixed"] == "a dry run"
    assert capped["to_add"] + capped["to_remove"] == 4 and capped["fixed"] is False
    assert "more than max_fixes (2)" in capped["not_fixed"]
    assert members == ["bob@example.com", "cy@example.com", "dee@example.com"]


async def test_each_schedule_slot_runs_once_and_a_missing_list_is_a_failed_run(
        database_url: str, sendgrid_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with account(database_url, sendgrid_url, monkeypatch) as a:
        missing = await a.reconcile()
        await a.make_list()
        first = await a.reconcile(slot=7)
        second = await a.reconcile(slot=7)
    assert missing is not None and "no SendGrid list named 'high_value_customers'" in missing["error"]
    assert first is not None and first["fixed"] is True
    assert second is None  # the slot was taken


def test_cli_reconciles_and_shows_the_history(database_url: str, sendgrid_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    async def given() -> str:
        async with account(database_url, sendgrid_url, monkeypatch) as a:
            await a.w.send(engage("ada@example.com", True))
            return await a.make_list("bob@example.com")

    async def members(list_id: str) -> list[str]:
        async with account(database_url, sendgrid_url, monkeypatch) as a:
            return await a.members(list_id)

    list_id = asyncio.run(given())
    config = tmp_path / "sgbridge.toml"
    text = EXAMPLE.read_text().replace('[actions.sendgrid]                   # the reconcile',
                                       f'[actions.sendgrid]\nendpoint = "{sendgrid_url}"  # the reconcile')
    config.write_text(f'database_url = "{database_url}"\n[sync]\nexport_poll_seconds = 0.05\n' + text)
    dry = CliRunner().invoke(main, ["audiences", "reconcile", "high-value", "--dry-run", "--config", str(config)])
    fixed = CliRunner().invoke(main, ["audiences", "reconcile", "high-value", "--config", str(config)])
    history = CliRunner().invoke(main, ["audiences", "history", "--config", str(config)])
    unknown = CliRunner().invoke(main, ["audiences", "reconcile", "nope", "--config", str(config)])
    assert dry.exit_code == 0, dry.output
    assert orjson.loads(dry.stdout)["added"] == ["ada@example.com"]
    assert fixed.exit_code == 0, fixed.output
    assert asyncio.run(members(list_id)) == ["ada@example.com"]
    rows = [orjson.loads(line) for line in history.stdout.splitlines()]
    assert [r["collections"][0]["dry_run"] for r in rows] == [False, True]  # newest first
    assert unknown.exit_code == 2 and "no [[audience_reconcile]] named 'nope'" in unknown.output


def test_serve_runs_the_reconcile_on_its_schedule(database_url: str, sendgrid_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The workflows role of a plain serve (in this process), with no workflow configured, runs the
    reconcile's current slot at start."""
    import time

    from sgbridge.app import build_app

    async def given() -> str:
        async with account(database_url, sendgrid_url, monkeypatch) as a:
            await a.w.send(engage("ada@example.com", True))  # recorded before the bridge starts
            return await a.make_list("bob@example.com")

    async def members(list_id: str) -> list[str]:
        async with account(database_url, sendgrid_url, monkeypatch) as a:
            return await a.members(list_id)

    list_id = asyncio.run(given())
    settings = _settings(sendgrid_url, every="1m")
    settings.database_url = database_url
    assert not settings.workflows
    journal = Journal(database_url)
    runs: list[Any] = []
    try:
        with serve_in_thread(build_app(settings), lifespan="on"):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not runs:
                time.sleep(0.2)
                runs = journal.run_sync(lambda conn: conn.execute(
                    "SELECT status, collections FROM sync_runs WHERE source = 'reconcile:high-value' "
                    "AND status <> 'running'").fetchall())
    finally:
        journal.close()
    assert [r[0] for r in runs] == ["ok"]
    report = orjson.loads(runs[0][1])[0]
    assert report["added"] == ["ada@example.com"] and report["removed"] == ["bob@example.com"]
    assert asyncio.run(members(list_id)) == ["ada@example.com"]
