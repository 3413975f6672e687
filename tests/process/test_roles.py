"""`sgbridge serve` runs one process per role under a supervisor: kill any of them, lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from sgbridge.emulators.event_factory import EventFactory
from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.emulators.serving import serve_in_thread
from sgbridge.emulators.webhook_signing import frame_events, generate_keypair, sign
from sgbridge.roles.supervisor import OWNER_FILE, RUNTIME_PREFIX
from tests.process.conftest import (
    Server,
    assert_each_once,
    free_port,
    retrying_sender,
    running,
    settled,
    wait_for_cursor,
    wait_for_restart,
)

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def _env(keys_public: str, segment_url: str, journal_url: str) -> dict[str, str]:
    return {"SENDGRID_WEBHOOK_PUBLIC_KEY": keys_public, "SEGMENT_WRITE_KEY": "wk", "SEGMENT_ENDPOINT": segment_url,
            "SGBRIDGE_DATABASE_URL": journal_url, "SGBRIDGE_WAREHOUSE__ENABLED": "true",
            "SGBRIDGE_WAREHOUSE__FLUSH_SECONDS": "0.2", "SGBRIDGE_DELIVERY__LEASE_SECONDS": "3",
            "SGBRIDGE_PROCESSES__RESTART_INITIAL_SECONDS": "0.1"}


@contextlib.contextmanager
def _sqlite_bridge_setup(tmp_path: Path, seed: int, count: int, **extra: str) -> Iterator[tuple[Any, Any, Any, Any]]:
    """Keys, a Segment emulator (in a thread), events it is sent by default (not `deferred`), and
    the environment of a serve on a SQLite journal with the warehouse off."""
    keys = generate_keypair()
    segment_app = create_segment_emulator(["wk"])
    events = [e for e in EventFactory(seed).batch(count) if e["event"] != "deferred"]
    with serve_in_thread(segment_app) as segment_url:
        env = {**_env(keys.public_key_base64, segment_url, f"sqlite:///{tmp_path / 'j.db'}"),
               "SGBRIDGE_WAREHOUSE__ENABLED": "false", **extra}
        yield keys, segment_app.state.emulator, events, env


async def test_each_role_killed_under_load_is_restarted_and_loses_and_doubles_nothing(journal_url: str,
                                                                                       tmp_path: Path) -> None:
    keys = generate_keypair()
    events = EventFactory(41).batch(4000)
    kind = {e["sg_event_id"]: e["event"] for e in events}
    segment_app = create_segment_emulator(["wk"])
    segment = segment_app.state.emulator.state
    with serve_in_thread(segment_app) as segment_url:
        server = Server(_env(keys.public_key_base64, segment_url, journal_url), tmp_path / "serve.log")
        with running(server):
            sender = retrying_sender(server, keys.private_key)
            sending = asyncio.create_task(sender.run(events=events))
            for role in ("deliver", "warehouse", "deliver", "ingest"):  # mid-window, mid-load, mid-request
                await asyncio.sleep(0.5)
                pid = await asyncio.to_thread(server.kill9_role, role)
                await wait_for_restart(server, role, pid)
            summary = await sending
            acked = await settled(segment, sender, kind, journal_url)
    log = (tmp_path / "serve.log").read_text()
    assert log.count("killed by SIGKILL") == 4 and "role warehouse" in log, log[-3000:]
    assert summary["logical_acked"] == len(events), summary
    assert_each_once(segment, acked, sender, tmp_path / "warehouse.duckdb")


def _post(url: str, keys: object, events: list[dict[str, object]]) -> httpx.Response:
    body = frame_events(events)
    ts = str(int(time.time()))
    return httpx.post(f"{url}/webhooks/sendgrid", content=body, headers={
        "X-Twilio-Email-Event-Webhook-Signature": sign(keys.private_key, ts, body),  # type: ignore[attr-defined]
        "X-Twilio-Email-Event-Webhook-Timestamp": ts})


async def test_sigterm_drains_and_stops_every_role_and_metrics_cover_them_all(tmp_path: Path) -> None:
    keys = generate_keypair()
    segment_app = create_segment_emulator(["wk"])
    segment = segment_app.state.emulator.state
    events = EventFactory(42).batch(300)
    forwarded = {e["sg_event_id"] for e in events if e["event"] != "deferred"}
    with serve_in_thread(segment_app) as segment_url:
        server = Server(_env(keys.public_key_base64, segment_url, f"sqlite:///{tmp_path / 'j.db'}"),
                        tmp_path / "serve.log")
        server.start()
        try:
            health = server.health()
            assert set(health["roles"]) == {"ingest", "deliver", "warehouse", "web"} and health["down"] == []
            pids = {role: info["pid"] for role, info in health["roles"].items()}
            assert len(set(pids.values())) == 4  # four processes
            console = httpx.get(f"http://127.0.0.1:{server.env['SGBRIDGE_CONSOLE__PORT']}/ui/login")
            assert console.status_code == 200 and "Log in" in console.text  # the web role, on its own port
            assert httpx.get(f"{server.url}/ui/login").status_code == 404  # not in the ingest process
            assert os.getpriority(os.PRIO_PROCESS, pids["warehouse"]) > os.getpriority(os.PRIO_PROCESS,
                                                                                        pids["ingest"])
            assert _post(server.url, keys, events).status_code == 200
            with anyio.fail_after(30):
                while not forwarded <= {m["properties"]["sg_event_id"] for m in segment.messages()}:
                    await anyio.sleep(0.1)
            await wait_for_cursor(server.env["SGBRIDGE_DATABASE_URL"], "warehouse")
            text = httpx.get(f"{server.url}/metrics").text
            # counted in the deliver and warehouse processes, shown by the ingest process
            assert 'sgbridge_delivery_events_total{destination="segment",outcome="delivered"}' in text
            assert 'sgbridge_delivery_events_total{destination="warehouse",outcome="delivered"}' in text
            assert 'sgbridge_inbound_events_total{result="accepted",source="default"}' in text
        finally:
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            code = server.proc.wait(40)
    assert code == 0
    assert server.processes() == []  # no role left running
    assert "sgbridge stopped" in (tmp_path / "serve.log").read_text()


def _runtime_dir_of(supervisor_pid: int) -> Path:
    for folder in Path(tempfile.gettempdir()).glob(f"{RUNTIME_PREFIX}*"):
        with contextlib.suppress(OSError):
            if (folder / OWNER_FILE).read_text() == str(supervisor_pid):
                return folder
    raise AssertionError(f"no runtime folder of supervisor {supervisor_pid}")


async def test_a_supervisor_killed_under_load_leaves_no_role_running_and_loses_nothing(tmp_path: Path) -> None:
    """kill -9 of the supervisor: its roles stop by themselves, and the next serve delivers the rest once."""
    keys = generate_keypair()
    events = EventFactory(44).batch(3000)
    kind = {e["sg_event_id"]: e["event"] for e in events}
    segment_app = create_segment_emulator(["wk"])
    segment = segment_app.state.emulator.state
    with serve_in_thread(segment_app) as segment_url:
        server = Server(_env(keys.public_key_base64, segment_url, f"sqlite:///{tmp_path / 'j.db'}"),
                        tmp_path / "serve.log")
        with running(server):
            sender = retrying_sender(server, keys.private_key)
            sending = asyncio.create_task(sender.run(events=events))
            await asyncio.sleep(1.0)
            assert server.proc is not None
            left = _runtime_dir_of(server.proc.pid)
            server.kill9_supervisor()
            with anyio.fail_after(20):
                while server.processes():  # no role goes on without it
                    await anyio.sleep(0.1)
            assert left.is_dir()  # nobody removed it: the supervisor was killed
            await asyncio.to_thread(server.start)  # the sender retries what was not acknowledged
            assert not left.exists()  # the next serve removed the killed one's runtime folder
            summary = await sending
            acked = await settled(segment, sender, kind, server.env["SGBRIDGE_DATABASE_URL"])
    assert "the supervisor (pid" in (tmp_path / "serve.log").read_text()
    assert summary["logical_acked"] == len(events), summary
    assert_each_once(segment, acked, sender, tmp_path / "warehouse.duckdb")


async def test_roles_run_alone_share_one_journal(tmp_path: Path) -> None:
    """Ingest on its own (no destination in its process), delivery started later, elsewhere."""
    with _sqlite_bridge_setup(tmp_path, seed=43, count=200) as (keys, emulator, events, env):
        segment = emulator.state
        ingest = Server(env, tmp_path / "ingest.log", args=("--role", "ingest"))
        with running(ingest):
            assert ingest.health()["roles"].keys() == {"ingest"}
            assert _post(ingest.url, keys, events).status_code == 200
            await anyio.sleep(1.0)
            assert segment.messages() == []  # nothing in the ingest process delivers
            deliver = Server(env, tmp_path / "deliver.log", args=("--role", "deliver"))
            with running(deliver):
                with anyio.fail_after(30):
                    while len(segment.messages()) < len(events):
                        await anyio.sleep(0.1)
    assert {m["properties"]["sg_event_id"] for m in segment.messages()} == {e["sg_event_id"] for e in events}


def test_a_port_in_use_stops_serve_at_start_instead_of_restarting_for_ever(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "SGBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'j.db'}",
               "SGBRIDGE_WAREHOUSE__ENABLED": "false", "SEGMENT_WRITE_KEY": ""}
        done = subprocess.run([sys.executable, "-m", "sgbridge", "serve", "--port", str(port)], env=env,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "while starting" in done.stderr and "starting it again" not in done.stderr, done.stderr[-2000:]


async def test_a_hung_role_is_killed_and_started_again(tmp_path: Path) -> None:
    """A process that stops beating while it still runs (here SIGSTOP; a blocked event loop or a
    deadlock alike) is killed and restarted, and what came in meanwhile is delivered."""
    with _sqlite_bridge_setup(tmp_path, seed=47, count=300, SGBRIDGE_PROCESSES__HEARTBEAT_SECONDS="0.3",
                              SGBRIDGE_PROCESSES__HUNG_AFTER_SECONDS="2") as (keys, emulator, events, env):
        segment = emulator.state
        server = Server(env, tmp_path / "serve.log")
        with running(server):
            hung = server.role_pid("deliver")
            os.kill(hung, signal.SIGSTOP)
            assert _post(server.url, keys, events).status_code == 200
            await wait_for_restart(server, "deliver", hung)
            with anyio.fail_after(30):
                while len(segment.messages()) < len(events):
                    await anyio.sleep(0.1)
            await anyio.sleep(3 * 0.3)
            assert server.health()["status"] == "ok"
    log = (tmp_path / "serve.log").read_text()
    assert f"role deliver (pid {hung}) has not beaten for" in log and "killed by SIGKILL" in log, log[-3000:]
    assert {m["properties"]["sg_event_id"] for m in segment.messages()} == {e["sg_event_id"] for e in events}


async def test_a_serve_started_while_a_killed_ones_roles_still_send_does_not_send_their_windows_again(
        tmp_path: Path) -> None:
    """kill -9 of the supervisor, and a new serve at once: the orphaned deliver process is still
    sending its windows (slowly here). The new one waits for its lock (journal/locks.py) instead of
    releasing those claims and sending the same windows a second time."""
    with _sqlite_bridge_setup(tmp_path, seed=48, count=1500, SGBRIDGE_DELIVERY__WINDOW_EVENTS="200",
                              SGBRIDGE_DELIVERY__LEASE_SECONDS="60") as (keys, emulator, events, env):
        emulator.faults.add({"delay": 6.0, "duration": 8.0})  # every batch in these 8 s takes 6 s
        first = Server(env, tmp_path / "first.log")
        with running(first):
            assert _post(first.url, keys, events).status_code == 200
            await anyio.sleep(0.7)  # windows claimed, their batches under way
            first.kill9_supervisor()
            second = Server(env, tmp_path / "second.log", port=free_port())
            with running(second):
                with anyio.fail_after(60):
                    while len(emulator.state.messages()) < len(events) or first.processes():
                        await anyio.sleep(0.1)
                await anyio.sleep(1.0)
    assert {m["properties"]["sg_event_id"] for m in emulator.state.messages()} == {e["sg_event_id"] for e in events}
    assert emulator.state.duplicates == 0, "a window was sent by both processes"
    assert "another process is still delivering to segment" in (tmp_path / "second.log").read_text()
