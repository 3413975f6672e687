"""kill -9 in the middle of an object sync, then run again: the tables end exactly as SendGrid has them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from tests.process.conftest import Server, running
from tests.sync.conftest import Account, serve_account

pytestmark = pytest.mark.slow
CONTACTS = 20_000


def _env(account: Account, tmp_path: Path) -> dict[str, str]:
    return {"SENDGRID_API_KEY": "SG.crash-test", "SENDGRID_API_ENDPOINT": account.url,
            "SGBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'journal.db'}",
            "SGBRIDGE_WAREHOUSE__CREDENTIALS": str(tmp_path / "w.duckdb"),
            "SGBRIDGE_WAREHOUSE__PIPELINES_DIR": str(tmp_path / "dlt"),
            "SGBRIDGE_SYNC__EXPORT_POLL_SECONDS": "0.05",
            "SGBRIDGE_SYNC__COLLECTIONS": "lists,recipients,bounces"}


def _latest_run(tmp_path: Path) -> dict[str, Any] | None:
    try:
        with sqlite3.connect(tmp_path / "journal.db") as conn:
            row = conn.execute("SELECT status, collections FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:  # not created yet
        return None
    if row is None:
        return None
    return {"status": row[0], "collections": {c["collection"]: c for c in orjson.loads(row[1])}}


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _recipients_started(tmp_path: Path) -> bool:
    run = _latest_run(tmp_path)
    return bool(run and run["collections"].get("recipients", {}).get("rows", 0) > 0)


def _assert_tables_match(account: Account, tmp_path: Path) -> None:
    state = account.state
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:
        ids = {r[0] for r in conn.execute("SELECT contact_id FROM sendgrid.recipients").fetchall()}
        total = conn.execute("SELECT count(*) FROM sendgrid.recipients").fetchone()
        lists = conn.execute("SELECT count(*) FROM sendgrid.lists").fetchone()
        bounces = conn.execute("SELECT count(*) FROM sendgrid.bounces").fetchone()
    assert ids == set(state.contacts)
    assert total == (len(state.contacts),)  # no row twice
    assert lists == (len(state.lists),)
    assert bounces == (len(state.bounces),)


@pytest.mark.parametrize("kill_after", ["rows", "loading"])
def test_cli_sync_killed_then_rerun(tmp_path: Path, kill_after: str) -> None:
    for account in serve_account(seed_contacts=CONTACTS, seed=3):
        account.state.export_rows_per_file = 2_000  # ten files: the sync is killed between them
        env = {**os.environ, **_env(account, tmp_path)}
        with (tmp_path / "sync.log").open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "sgbridge", "sync", "--json"], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        if kill_after == "rows":
            _wait(lambda: _recipients_started(tmp_path), 120, "recipients to be read")
        else:
            _wait(lambda: (_latest_run(tmp_path) or {}).get("collections", {}).get("recipients", {})
                  .get("note") == "loading", 120, "recipients to be loading")
        proc.kill()
        proc.wait(10)
        assert _latest_run(tmp_path)["status"] == "running"  # what the dead process left

        again = subprocess.run([sys.executable, "-m", "sgbridge", "sync", "--json"], env=env, capture_output=True,
                               timeout=300)
        assert again.returncode == 0, again.stdout.decode()[-3000:] + again.stderr.decode()[-3000:]
        assert orjson.loads(again.stdout)["status"] == "ok"
        _assert_tables_match(account, tmp_path)


def test_serve_killed_mid_sync_runs_the_slot_again_after_restart(tmp_path: Path) -> None:
    for account in serve_account(seed_contacts=CONTACTS, seed=4):
        account.state.export_rows_per_file = 2_000
        env = _env(account, tmp_path)
        env.update(SGBRIDGE_WAREHOUSE__ENABLED="true", SGBRIDGE_SYNC__STALE_AFTER_SECONDS="2")
        server = Server(env, tmp_path / "serve.log")
        server.start()
        try:
            _wait(lambda: _recipients_started(tmp_path), 120, "the scheduled sync to read recipients")
            server.kill9()
            with running(server):  # same slot: the dead run's slot is taken over once it is stale
                _wait(lambda: (_latest_run(tmp_path) or {}).get("status") == "ok", 180, "the sync to finish")
        finally:
            server.stop()
        with sqlite3.connect(tmp_path / "journal.db") as conn:
            runs = conn.execute("SELECT status, trigger, slot FROM sync_runs ORDER BY id").fetchall()
        _assert_tables_match(account, tmp_path)
    assert [r[0] for r in runs] == ["interrupted", "ok"]
    assert runs[0][2] is None and runs[1][1] == "schedule" and runs[1][2] is not None
