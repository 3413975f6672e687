"""``sgbridge serve``: start one process per role, restart the ones that die, stop them all on SIGTERM.

The supervisor itself does no work and opens no database: it starts ``sgbridge serve --role R``
children (ingest first, the others once it beats), shares a runtime folder with them for
heartbeats and Prometheus' multiprocess files, and watches them. A child that dies is logged
and started again after a back-off (doubled while it keeps dying quickly). A child that fails
before its first heartbeat stops the whole start, with its exit code: a configuration or a port
problem is not fixed by retrying. A child whose heartbeat stops while its process runs (its event
loop blocked, a deadlock, SIGSTOP) is killed after ``processes.hung_after_seconds`` and started
again like one that died. SIGTERM or SIGINT are passed on; each role drains what it is
sending for up to ``processes.stop_timeout_seconds`` and is killed after that.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from sgbridge.roles import heartbeat
from sgbridge.roles.process import SUPERVISOR_PID_ENV
from sgbridge.settings import Settings

log = logging.getLogger("sgbridge.supervisor")

RUNTIME_PREFIX = "sgbridge-run-"
OWNER_FILE = "supervisor.pid"  # in a runtime folder the supervisor made: whose it is
STABLE_SECONDS = 60.0  # a child that ran this long is healthy again: its back-off starts over
START_TIMEOUT_SECONDS = 60.0


@dataclass
class Child:
    role: str
    command: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


def remove_orphaned_runtime_dirs(parent: Path) -> None:
    """Runtime folders of supervisors that were killed (``kill -9`` leaves its folder behind): those
    whose owner process is gone, and every role that beat in them too, are removed when the next
    ``serve`` starts. (A killed supervisor's roles still finish their windows for a while, writing
    their metrics there: removing it under them failed their sends.)"""
    for folder in parent.glob(f"{RUNTIME_PREFIX}*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not one of ours, or still being made
        users = [owner, *(info["pid"] for info in heartbeat.read(folder, 1.0).values())]
        if os.getpid() in users or any(_alive(pid) for pid in users):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        log.info("removed %s, left by a supervisor (pid %d) that was killed", folder, owner)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class StartFailed(Exception):
    def __init__(self, role: str, code: int) -> None:
        super().__init__(f"role {role} exited with code {code} while starting")
        self.role = role
        self.code = code


class Supervisor:
    def __init__(self, settings: Settings, roles: list[str], config: str | None, host: str, port: int,
                 runtime_dir: Path | None = None) -> None:
        self.settings = settings
        self.roles = roles
        self.owns_runtime_dir = runtime_dir is None
        if runtime_dir is None:
            remove_orphaned_runtime_dirs(Path(tempfile.gettempdir()))
        self.runtime_dir = runtime_dir or Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX))
        if self.owns_runtime_dir:
            (self.runtime_dir / OWNER_FILE).write_text(str(os.getpid()))
        self.metrics_dir = self.runtime_dir / "metrics"
        base = [sys.executable, "-m", "sgbridge", "serve"] + (["--config", config] if config else [])
        ports = {"ingest": port, "web": settings.console.port}  # the roles that serve HTTP
        self.children = [Child(role, [*base, "--role", role]
                               + (["--host", host, "--port", str(ports[role])] if role in ports else []))
                         for role in roles]
        self.stopping = False
        self._hung_checked_at = 0.0

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        """Start, watch until told to stop, stop; the exit code of the whole ``serve``."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._prepare_runtime_dir()
        try:
            self._start_all()
            log.info("sgbridge is running: %s", ", ".join(f"{c.role} (pid {self._pid(c)})" for c in self.children))
            while not self.stopping:
                self._watch()
                time.sleep(0.2)
            return 0
        except StartFailed as failed:
            log.error("%s; stopping", failed)
            return 128 - failed.code if failed.code < 0 else failed.code or 1  # killed by signal N: 128+N
        finally:
            self._stop_all()
            if self.owns_runtime_dir:
                shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("%s: stopping the roles (up to %.0f s to finish what they send)",
                     signal.Signals(signum).name, self.settings.processes.stop_timeout_seconds)
        self.stopping = True

    def _prepare_runtime_dir(self) -> None:
        shutil.rmtree(self.metrics_dir, ignore_errors=True)  # counters of an earlier run would add up
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        for old in self.runtime_dir.glob("*.heartbeat"):
            old.unlink()

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
                heartbeat.RUNTIME_DIR_ENV: str(self.runtime_dir),
                heartbeat.SUPERVISED_ROLES_ENV: ",".join(self.roles), SUPERVISOR_PID_ENV: str(os.getpid())}

    def _spawn(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.command, env=self._env())
        child.started_at = time.monotonic()
        child.restart_at = None

    def _pid(self, child: Child) -> int | None:
        return child.proc.pid if child.proc else None

    def _wait_for_beat(self, child: Child) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        every = self.settings.processes.heartbeat_seconds
        while not self.stopping and time.monotonic() < deadline:
            assert child.proc is not None
            code = child.proc.poll()
            if code is not None:
                raise StartFailed(child.role, code)
            beat = heartbeat.read(self.runtime_dir, every).get(child.role)
            if beat and beat["pid"] == child.proc.pid:
                return
            time.sleep(0.05)
        if not self.stopping:
            raise StartFailed(child.role, 1)

    def _start_all(self) -> None:
        # Ingest first: it applies the journal's schema before the others open it, and webhooks
        # are taken as soon as possible.
        first, rest = self.children[0], self.children[1:]
        self._spawn(first)
        self._wait_for_beat(first)
        if self.stopping:
            return
        for child in rest:
            self._spawn(child)
        for child in rest:
            self._wait_for_beat(child)

    def _watch(self) -> None:
        now = time.monotonic()
        self._kill_hung(now)
        initial, ceiling = self.settings.processes.restart_initial_seconds, self.settings.processes.restart_max_seconds
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._spawn(child)
                    log.warning("role %s started again (pid %s, restart %d)", child.role, self._pid(child),
                                child.restarts)
                continue
            assert child.proc is not None
            code = child.proc.poll()
            if code is None:
                continue
            self._forget(child.proc.pid)
            ran = now - child.started_at
            child.backoff = initial if ran >= STABLE_SECONDS or not child.backoff else min(ceiling, child.backoff * 2)
            child.restart_at = now + child.backoff
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            log.error("role %s (pid %d) %s after %.1f s; starting it again in %.1f s", child.role, child.proc.pid,
                      how, ran, child.backoff)

    def _kill_hung(self, now: float) -> None:
        """SIGKILL a running child whose heartbeat is older than ``hung_after_seconds`` (checked about
        once a heartbeat interval); ``_watch`` then restarts it as a child that died."""
        settings = self.settings.processes
        if now < self._hung_checked_at + settings.heartbeat_seconds:
            return
        self._hung_checked_at = now
        beats = heartbeat.read(self.runtime_dir, settings.heartbeat_seconds)
        for child in self.children:
            if child.proc is None or child.restart_at is not None or child.proc.poll() is not None:
                continue
            beat = beats.get(child.role)
            if beat is None or beat["pid"] != child.proc.pid:
                # Not beaten yet since this start: it counts as hung once the start took too long.
                if now - child.started_at > max(settings.hung_after_seconds, START_TIMEOUT_SECONDS):
                    self._kill(child, f"has not beaten in the {now - child.started_at:.0f} s since it started")
                continue
            if beat["beat_age_seconds"] > settings.hung_after_seconds:
                self._kill(child, f"has not beaten for {beat['beat_age_seconds']:.0f} s")

    def _kill(self, child: Child, why: str) -> None:
        assert child.proc is not None
        log.error("role %s (pid %d) %s: taken as hung, killing it", child.role, child.proc.pid, why)
        child.proc.kill()  # Popen ignores a process that has just exited

    def _forget(self, pid: int) -> None:
        """A dead process's live gauges (the backlog) leave /metrics; its counters stay in the totals."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]

    def _stop_all(self) -> None:
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.processes.stop_timeout_seconds + 5
        for child in running:
            assert child.proc is not None
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("role %s (pid %d) did not stop in time; killing it", child.role, child.proc.pid)
                child.proc.kill()
                child.proc.wait()
        log.info("sgbridge stopped")
