"""Real processes on free loopback ports: `sgbridge serve` as a subprocess, emulators in threads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import duckdb
import httpx
import pytest

from sgbridge.emulators.sendgrid_webhook import WebhookSender
from sgbridge.journal import Journal
from tests.conftest import postgres_database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`sgbridge serve` in a subprocess, restartable on the same port and journal.

    Plain `serve` is a supervisor with one child process per role; `kill9` kills them all at
    once (the machine lost power), `kill9_role` one role's process, `kill9_supervisor` only
    the supervisor.
    """

    def __init__(self, env: dict[str, str], log: Path, port: int | None = None,
                 args: tuple[str, ...] = ()) -> None:
        # The warehouse is off unless a test turns it on (and it then lives beside the log, not in the cwd).
        defaults = {"SGBRIDGE_WAREHOUSE__ENABLED": "false",
                    "SGBRIDGE_WAREHOUSE__CREDENTIALS": str(log.parent / "warehouse.duckdb"),
                    "SGBRIDGE_WAREHOUSE__PIPELINES_DIR": str(log.parent / "dlt"),
                    "SGBRIDGE_CONSOLE__PORT": str(free_port()),  # the web role: a port of its own
                    "SGBRIDGE_CONSOLE__SEARCH_INDEX_PATH": str(log.parent / "search.db")}
        self.env = {**os.environ, **defaults, **env}
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.args = args

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "sgbridge", "serve", "--port", str(self.port),
                                          *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if self.health().get("status") == "ok":  # every role is up
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"serve did not start:\n{self.log.read_text()[-3000:]}")

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/healthz", timeout=0.5)
        return dict(response.json()) if response.status_code == 200 else {}

    def role_pid(self, role: str) -> int:
        return int(self.health()["roles"][role]["pid"])

    def kill9(self) -> None:
        """Every process of this `serve` at once, as a power loss would."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        _wait_gone(self.proc.pid)

    def kill9_role(self, role: str) -> int:
        """kill -9 one role's process; the supervisor starts it again. Returns the killed pid."""
        pid = self.role_pid(role)
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill9_supervisor(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def processes(self) -> list[int]:
        """The pids still in this serve's process group."""
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.kill9()
        if self.proc:
            with contextlib.suppress(ProcessLookupError):  # children left by a supervisor killed alone
                os.killpg(self.proc.pid, signal.SIGKILL)


def _wait_gone(group: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


@contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def journal_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Each test twice: a SQLite journal, and a database of its own on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'journal.db'}"
    else:
        yield from postgres_database()


async def wait_for_cursor(journal_url: str, destination: str) -> None:
    """Until ``destination``'s cursor has passed every stored event (60 s at most)."""
    journal = Journal(journal_url)
    try:
        with anyio.fail_after(60):
            while True:
                stats = journal.stats()
                if stats["cursors"].get(destination, 0) >= stats["max_seq"]:
                    return
                await anyio.sleep(0.2)
    finally:
        journal.close()


def retrying_sender(server: Server, private_key: Any) -> WebhookSender:
    """Signed webhooks at 1,500 events/s with SendGrid's duplicates, retrying what is not
    acknowledged (as SendGrid does) for 90 s: the load the kill -9 tests crash the server under."""
    return WebhookSender(f"{server.url}/webhooks/sendgrid", private_key, rate=1500, batch_size=50, concurrency=4,
                         duplicate_fraction=0.02, retry_deadline=90, backoff_initial=0.2, backoff_max=1.0, timeout=5)


async def settled(segment: Any, sender: WebhookSender, kind: dict[str, str], journal_url: str) -> set[str]:
    """Once every acknowledged event Segment takes (all but deferred) is in the Segment emulator and
    the warehouse has passed the whole log, and a late resend has had a second to land: those ids."""
    acked = {i for i in sender.acked_logical if kind[i] != "deferred"}
    with anyio.fail_after(60):
        while not acked <= {m["properties"]["sg_event_id"] for m in segment.messages()}:
            await anyio.sleep(0.2)
    await wait_for_cursor(journal_url, "warehouse")
    await anyio.sleep(1.0)
    return acked


def assert_each_once(segment: Any, acked: set[str], sender: WebhookSender, warehouse_file: Path) -> None:
    """Segment got every acknowledged event once by id; the warehouse's activity table has every
    acknowledged event (deferred too) once."""
    received = [m["properties"]["sg_event_id"] for m in segment.messages()]
    assert len(received) == len(set(received)), "an event was accepted twice under different messageIds"
    assert acked <= set(received)
    with duckdb.connect(str(warehouse_file), read_only=True) as warehouse:
        loaded = [r[0] for r in warehouse.execute("SELECT sg_event_id FROM sendgrid.activity").fetchall()]
    assert len(loaded) == len(set(loaded))
    assert set(sender.acked_logical) <= set(loaded)


async def wait_for_restart(server: Server, role: str, old_pid: int) -> None:
    """Until the supervisor has started ``role`` again (a new pid, alive)."""
    with anyio.fail_after(30):
        while True:
            try:
                roles = (await asyncio.to_thread(server.health)).get("roles", {})
                if roles.get(role, {}).get("pid") not in (None, old_pid) and roles[role]["alive"]:
                    return
            except httpx.HTTPError:
                pass
            await anyio.sleep(0.1)
