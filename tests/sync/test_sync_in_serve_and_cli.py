"""The object sync as users meet it: run by `serve` on its schedule, and by the CLI."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import orjson
import pytest
from click.testing import CliRunner

from sgbridge.cli import main
from sgbridge.journal.sync_runs import SyncRuns
from tests.conftest import BridgeFactory
from tests.sync.conftest import Account, duck, serve_account

pytestmark = pytest.mark.anyio


async def _wait_for_run(journal: object, done: bool = True, timeout: float = 60.0) -> list[object]:
    runs = SyncRuns(journal)  # type: ignore[arg-type]
    with anyio.fail_after(timeout):
        while True:
            history = await anyio.to_thread.run_sync(runs.history)
            if history and (not done or history[0].finished_at is not None):
                return history
            await anyio.sleep(0.1)


async def test_serve_syncs_on_start_and_records_the_run(bridge_factory: BridgeFactory, account: Account,
                                                         tmp_path: Path) -> None:
    async with bridge_factory(SENDGRID_API_KEY="SG.serve-key", SENDGRID_API_ENDPOINT=account.url,
                              SGBRIDGE_WAREHOUSE__ENABLED="true", SGBRIDGE_SYNC__COLLECTIONS="lists,bounces",
                              SGBRIDGE_SYNC__INTERVAL_SECONDS="3600") as h:
        health = (await h.client.get("/healthz")).json()
        assert health["object_sync"] == ["default"]
        history = await _wait_for_run(h.bridge.journal)
    run = history[0]
    assert (run.trigger, run.status) == ("schedule", "ok")
    assert run.slot == int(time.time() // 3600)
    rows = {c["collection"]: c["rows"] for c in run.collections}
    assert rows == {"lists": len(account.state.lists), "bounces": len(account.state.bounces)}
    assert duck(tmp_path / "sgbridge.duckdb", "SELECT count(*) FROM sendgrid.lists") == [(len(account.state.lists),)]


async def test_stopping_serve_mid_sync_records_an_interrupted_run(bridge_factory: BridgeFactory) -> None:
    for account in serve_account(seed_contacts=100, job_delay_seconds=30.0):  # an export that takes a while
        async with bridge_factory(SENDGRID_API_KEY="SG.serve-key", SENDGRID_API_ENDPOINT=account.url,
                                  SGBRIDGE_WAREHOUSE__ENABLED="true", SGBRIDGE_SYNC__COLLECTIONS="recipients") as h:
            await _wait_for_run(h.bridge.journal, done=False)
            await anyio.sleep(0.3)  # the export is requested and being waited for
            journal = h.bridge.journal
            started = time.monotonic()
        stopped_in = time.monotonic() - started
        from sgbridge.journal import Journal

        reopened = Journal(journal.url)
        try:
            run = SyncRuns(reopened).history()[0]
        finally:
            reopened.close()
    assert stopped_in < 10  # it did not wait for the export
    assert run.status == "interrupted"
    assert run.collections[0]["status"] == "interrupted"


def test_cli_sync_history_and_check(account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.cli-key")
    monkeypatch.setenv("SENDGRID_API_ENDPOINT", account.url)
    monkeypatch.setenv("SGBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'journal.db'}")
    monkeypatch.setenv("SGBRIDGE_SYNC__EXPORT_POLL_SECONDS", "0.05")
    runner = CliRunner()

    synced = runner.invoke(main, ["sync", "--json", "-c", "lists", "-c", "recipients"])
    assert synced.exit_code == 0, synced.output
    report = orjson.loads(synced.output)
    assert report["status"] == "ok"
    assert {c["collection"]: c["rows"] for c in report["collections"]} == {
        "lists": len(account.state.lists), "recipients": len(account.state.contacts)}

    shown = runner.invoke(main, ["sync", "-c", "segments"])  # progress bars, then a summary table
    assert shown.exit_code == 0, shown.output
    assert "segments" in shown.output and "synced" in shown.output

    history = runner.invoke(main, ["sync-history", "--json"])
    runs = [orjson.loads(line) for line in history.output.splitlines()]
    assert [r["status"] for r in runs] == ["ok", "ok"]
    assert runs[1]["collections"][1] == {"collection": "recipients", "status": "synced",
                                         "rows": len(account.state.contacts),
                                         "seconds": runs[1]["collections"][1]["seconds"]}
    assert runs[1]["duration_seconds"] > 0
    narrow = runner.invoke(main, ["sync-history"], env={"COLUMNS": "80"})
    assert max(len(line) for line in narrow.output.splitlines()) <= 80
    assert "trigger manual" in narrow.output or "trigger cli" in narrow.output, narrow.output

    checked = runner.invoke(main, ["check"])
    assert checked.exit_code == 0, checked.output
    assert "the API key is valid" in checked.output


def test_check_names_invalid_keys_and_missing_scopes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {"SG.full": None, "SG.suppressions-only": ["suppression.read", "asm.groups.read"]}
    for account in serve_account(api_keys=keys, seed_contacts=10):
        monkeypatch.setenv("SENDGRID_API_ENDPOINT", account.url)
        monkeypatch.setenv("SGBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'journal.db'}")
        runner = CliRunner()
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong")
        invalid = runner.invoke(main, ["check"])
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.suppressions-only \n")  # pasted with a stray space
        limited = runner.invoke(main, ["check", "--json"])
    assert invalid.exit_code == 1
    assert "Invalid credentials" in invalid.output
    assert "SG.wrong" not in invalid.output  # the key itself is never shown
    report = orjson.loads(limited.output)
    assert limited.exit_code == 1
    assert report["valid"] is True
    assert set(report["missing"]) == {"lists", "segments", "recipients", "campaigns", "field_definitions"}
