"""kill -9 while workflow runs wait on their timers: each email is still sent once, on time.

A run mid-wait is nothing but its row in the journal (position, timer, context). These tests
crash the process of the ``workflows`` role, then the whole ``sgbridge serve``, while runs wait,
and check that every email goes out exactly once, never before its timer, and that a timer that
fell due while everything was down fires as soon as the bridge is back. Then two ``workflows``
processes on one PostgreSQL journal: each timer fires in exactly one of them, and a profile keeps
the traits of a window whose process is slow (the intake's windows are exclusive across processes).
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import psycopg
import pytest

from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.emulators.serving import serve_in_thread
from sgbridge.journal import Journal
from sgbridge.journal.workflow_runs import WorkflowRuns
from tests.conftest import postgres_database
from tests.process.conftest import Server, running, wait_for_restart

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

WRITE_KEY = "wf-crash-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
TEMPLATE = "d-7a9b8c6d5e4f4a3b2c1d0e9f8a7b6c5d"  # one of the emulator's default templates
WORKFLOW = "cart-recovery"


def _config(path: Path, sendgrid_url: str, wait: str, to: str = "$.properties.email") -> Path:
    path.write_text(f"""
[segment_inbound]
write_keys = ["{WRITE_KEY}"]

[actions.sendgrid]
destination = "sendgrid"
endpoint = "{sendgrid_url}"

[[workflows]]
name = "{WORKFLOW}"
trigger = 'event = "Cart Abandoned"'
exit_on = ['event = "Order Completed"']

[[workflows.steps]]
wait = "{wait}"

[[workflows.steps]]
name = "recovery_email"
action = "sendEmail"
destination = "sendgrid"
[workflows.steps.mapping]
from = {{ email = "shop@example.com", name = "Example Shop" }}
to = {{ email = {{ "@path" = "{to}" }} }}
template_id = "{TEMPLATE}"
categories = ["cart-recovery"]
""")
    return path


def _env(config: Path, journal_url: str) -> dict[str, str]:
    return {"SGBRIDGE_CONFIG": str(config), "SGBRIDGE_DATABASE_URL": journal_url, "SENDGRID_API_KEY": "SG.wf-crash",
            "SEGMENT_WRITE_KEY": "",  # no Segment destination: the emails are what is checked
            "SGBRIDGE_PROCESSES__RESTART_INITIAL_SECONDS": "0.1",
            # a run a killed process had taken up is taken over 3 s later (not after the default minute)
            "SGBRIDGE_WORKFLOW_ENGINE__LEASE_SECONDS": "3", "SGBRIDGE_WORKFLOW_ENGINE__POLL_SECONDS": "0.2"}


def _email(user: str) -> str:
    return f"{user}@example.com"


async def _track(url: str, users: list[str]) -> None:
    """One 'Cart Abandoned' track call per user, on the Tracking API, each acknowledged."""
    async with httpx.AsyncClient(timeout=5) as client:
        for user in users:
            response = await client.post(f"{url}/v1/track", headers=AUTH, json={
                "userId": user, "event": "Cart Abandoned", "messageId": f"cart-{user}",
                "properties": {"email": _email(user), "cart_url": f"https://shop.example/cart/{user}"}})
            assert response.status_code == 200, response.text


def _runs(journal_url: str) -> dict[str, dict[str, Any]]:
    """The workflow's runs by user, read from the journal (as ``sgbridge workflows runs`` does)."""
    journal = Journal(journal_url)
    try:
        rows = WorkflowRuns(journal).list_runs(WORKFLOW, limit=10_000)
    finally:
        journal.close()
    return {r.run_key.removeprefix("userId:"): r.as_json() for r in rows}  # a run's key: "userId:<id>"


def _cli_runs(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``sgbridge workflows runs --json``, what an operator reads."""
    done = subprocess.run([sys.executable, "-m", "sgbridge", "workflows", "runs", "--json", "--limit", "1000"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {r["key"].removeprefix("userId:"): r for r in rows}


async def _until_runs(journal_url: str, users: list[str], state: str, timeout: float = 20) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            runs = await asyncio.to_thread(_runs, journal_url)
            if all(runs.get(u, {}).get("state") == state for u in users):
                return runs
            await anyio.sleep(0.1)


def _sends(state: Any) -> list[tuple[str, float]]:
    """(recipient, when the emulator took the request) of every accepted mail send."""
    out = []
    for request in state.recorded_requests([("path", "/v3/mail/send"), ("method", "POST")]):
        if request["status"] == 202:
            for personalization in request["json"]["personalizations"]:
                out += [(to["email"], float(request["received_at"])) for to in personalization["to"]]
    return out


async def _until_sent(state: Any, users: list[str], timeout: float = 20) -> dict[str, list[float]]:
    wanted = {_email(u) for u in users}
    with anyio.fail_after(timeout):
        while not wanted <= {to for to, _ in _sends(state)}:
            await anyio.sleep(0.05)
    await anyio.sleep(1.0)  # a second send of one of them would have landed by now
    sent: dict[str, list[float]] = {}
    for to, at in _sends(state):
        sent.setdefault(to, []).append(at)
    return sent


async def test_kill_9_mid_wait_sends_each_email_once_on_time_and_a_due_timer_at_once_on_restart(
        journal_url: str, tmp_path: Path) -> None:
    emulator = create_sendgrid_emulator(None)
    state = emulator.state.emulator.state
    wait = 4.0
    with serve_in_thread(emulator) as sendgrid_url:
        env = _env(_config(tmp_path / "c.toml", sendgrid_url, f"{wait:g}s"), journal_url)
        server = Server(env, tmp_path / "serve.log")  # supervised: ingest, deliver, workflows
        with running(server):
            assert set(server.health()["roles"]) == {"ingest", "deliver", "workflows", "web"}

            # 1. the workflows role's process killed mid-wait; the supervisor starts it again
            first = [f"a{i}" for i in range(4)]
            await _track(server.url, first)
            waiting = await _until_runs(journal_url, first, "waiting")
            assert all(waiting[u]["due_at"] >= waiting[u]["started_at"] + wait - 0.01 for u in first)
            assert _sends(state) == []
            pid = await asyncio.to_thread(server.kill9_role, "workflows")
            await wait_for_restart(server, "workflows", pid)
            sent = await _until_sent(state, first)
            runs = await _until_runs(journal_url, first, "completed")
            for user in first:
                assert len(sent[_email(user)]) == 1, f"{user}: {sent[_email(user)]}"
                assert runs[user]["started_at"] + wait <= waiting[user]["due_at"] <= sent[_email(user)][0], \
                    "sent before its timer"
                assert sent[_email(user)][0] < waiting[user]["due_at"] + 2.0, "the restarted process fired late"

            # 2. the whole serve killed mid-wait, and down until after the timers' due time
            second = [f"b{i}" for i in range(4)]
            await _track(server.url, second)
            waiting = await _until_runs(journal_url, second, "waiting")
            due = max(waiting[u]["due_at"] for u in second)
            await asyncio.to_thread(server.kill9)
            await anyio.sleep(max(due - time.time(), 0) + 1.5)  # every timer fell due while down
            assert {to for to, _ in _sends(state)} == {_email(u) for u in first}
            restarted = time.time()
            await asyncio.to_thread(server.start)
            up = time.time()  # every role reports healthy
            sent = await _until_sent(state, second, timeout=10)
            runs = await _until_runs(journal_url, second, "completed")
            for user in second:
                assert len(sent[_email(user)]) == 1, f"{user}: {sent[_email(user)]}"
                assert runs[user]["started_at"] + wait <= waiting[user]["due_at"] < restarted <= sent[_email(user)][0]
                assert sent[_email(user)][0] - up < 2.0, "a timer that fell due while down waited on"
            cli = await asyncio.to_thread(_cli_runs, server.env)
    log = (tmp_path / "serve.log").read_text()
    assert f"role workflows (pid {pid}) killed by SIGKILL" in log, log[-3000:]
    everyone = first + second
    assert {u: cli[u]["state"] for u in everyone} == dict.fromkeys(everyone, "completed")
    recipients = Counter(to for to, _ in _sends(state))
    assert recipients == Counter({_email(u): 1 for u in everyone}), "an email was sent twice, or to someone else"


@pytest.fixture
def pg_url():  # type: ignore[no-untyped-def]
    yield from postgres_database()


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            head, value = line.rsplit(" ", 1)
            got = ",".join(sorted(head[len(name) + 1:-1].split(",")))
            if got == want:
                total += float(value)
    return total


@pytest.mark.postgres
async def test_two_workflows_processes_on_postgres_fire_each_timer_once(pg_url: str, tmp_path: Path) -> None:
    emulator = create_sendgrid_emulator(None)
    state = emulator.state.emulator.state
    users = [f"u{i:02d}" for i in range(50)]
    with serve_in_thread(emulator) as sendgrid_url:
        env = {**_env(_config(tmp_path / "c.toml", sendgrid_url, "2s"), pg_url),
               "SGBRIDGE_WORKFLOW_ENGINE__BATCH_RUNS": "5"}  # small claims: both processes take turns
        ingest = Server(env, tmp_path / "ingest.log", args=("--role", "ingest"))
        a = Server(env, tmp_path / "a.log", args=("--role", "workflows"))
        b = Server(env, tmp_path / "b.log", args=("--role", "workflows"))
        with running(ingest), running(a), running(b):
            await _track(ingest.url, users)
            sent = await _until_sent(state, users, timeout=30)
            runs = await _until_runs(pg_url, users, "completed")
            metrics = [httpx.get(f"{s.url}/metrics").text for s in (a, b)]
    for user in users:
        assert len(sent[_email(user)]) == 1, f"{user}: sent {len(sent[_email(user)])} times"
        assert sent[_email(user)][0] >= runs[user]["started_at"] + 2.0, "sent before its timer"
    assert Counter(to for to, _ in _sends(state)) == Counter({_email(u): 1 for u in users})
    completed = [_metric(m, "sgbridge_workflow_runs_total", workflow=WORKFLOW, event="completed") for m in metrics]
    assert sum(completed) == len(users), completed
    assert all(completed), f"one process fired every timer: {completed}"
    print(f"runs completed by each workflows process: {completed}")


def _stall_run_start(conn: Any, key: str) -> None:
    """An uncommitted row holding ``key``'s active run slot (wf_runs.active_key): the intake
    transaction that starts a run for that key waits on it, as on any slow transaction (a GC
    pause, a slow disk, a descheduled process), until ``conn`` rolls back."""
    conn.execute("INSERT INTO wf_runs (workflow, run_key, state, position, trigger_seq, started_at, updated_at, "
                 "active_key, context) VALUES (%s, %s, 'ready', '0', -1, 0, 0, %s, '\\x7b7d')",
                 (WORKFLOW, key, f"{WORKFLOW}\x1f{key}"))


async def _batch(url: str, batch: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(f"{url}/v1/batch", headers=AUTH, json={"batch": batch})
    assert response.status_code == 200, response.text


@pytest.mark.postgres
async def test_two_workflows_processes_lose_no_profile_trait(pg_url: str, tmp_path: Path) -> None:
    """identify {first_name} (window 1, whose process is slow), then identify {email} and 'Cart
    Abandoned' (window 2): window 2 waits for window 1, the profile has both traits and the email
    is sent."""
    emulator = create_sendgrid_emulator(None)
    state = emulator.state.emulator.state
    with serve_in_thread(emulator) as sendgrid_url:
        env = _env(_config(tmp_path / "c.toml", sendgrid_url, "2s", to="$.traits.email"), pg_url)
        ingest = Server(env, tmp_path / "ingest.log", args=("--role", "ingest"))
        a = Server(env, tmp_path / "a.log", args=("--role", "workflows"))
        b = Server(env, tmp_path / "b.log", args=("--role", "workflows"))
        with running(ingest), running(a), running(b), psycopg.connect(pg_url) as stall, \
                psycopg.connect(pg_url, autocommit=True) as look:
            _stall_run_start(stall, "userId:other")
            # window 1: another user's cart (its run start waits on the stall), then Ann's first name
            await _batch(ingest.url, [
                {"type": "track", "userId": "other", "event": "Cart Abandoned", "messageId": "cart-other"},
                {"type": "identify", "userId": "ann", "messageId": "id-ann-1", "traits": {"first_name": "Ann"}}])
            with anyio.fail_after(10):
                while not look.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                                       "query LIKE 'INSERT INTO wf_runs%%'").fetchone():
                    await anyio.sleep(0.05)
            # window 2: the other process is idle, but must not apply it while window 1 is in flight
            # (before the intake's claims were exclusive, it did, and its profile was overwritten)
            await _batch(ingest.url, [
                {"type": "identify", "userId": "ann", "messageId": "id-ann-2", "traits": {"email": _email("ann")}},
                {"type": "track", "userId": "ann", "event": "Cart Abandoned", "messageId": "cart-ann"}])
            await anyio.sleep(2.0)  # the other process polls every 50 ms
            assert look.execute("SELECT 1 FROM profiles WHERE profile_key = 'userId:ann'").fetchone() is None
            stall.rollback()  # window 1 goes on, then window 2
            with anyio.fail_after(15):
                while (await asyncio.to_thread(_runs, pg_url)).get("ann", {}).get("state") not in (
                        "exited", "completed", "failed"):
                    await anyio.sleep(0.1)
            run = (await asyncio.to_thread(_runs, pg_url))["ann"]
            row = look.execute("SELECT traits FROM profiles WHERE profile_key = 'userId:ann'").fetchone()
    assert run["state"] == "completed", run  # failed: "To is missing the required field 'email'"
    assert row is not None and orjson.loads(row[0]) == {"first_name": "Ann", "email": _email("ann")}
    assert [to for to, _ in _sends(state)] == [_email("ann")]
