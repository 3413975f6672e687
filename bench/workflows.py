"""Workflow benchmarks: timers, the intake against many workflows, the memory of waiting runs.

    .venv/bin/python bench/workflows.py timers [--runs 100000]
    .venv/bin/python bench/workflows.py intake [--events 100000] [--workflows 50]
    .venv/bin/python bench/workflows.py lateness [--runs 1000000] [--due 300000] [--rate 5000]
    .venv/bin/python bench/workflows.py role-rss [--runs 1000000]

``timers``: ``--runs`` runs are started through the intake (a 'Cart Abandoned' each, one workflow
``wait 1h → exit``) on a fresh SQLite journal, with the product's defaults
(``workflow_engine``); then the clock the runner reads is put an hour on and the runner fires every
timer (``WorkflowRunner.run_once`` until nothing is due). ``fired_per_s`` is timers fired and
written back per second; ``lateness_p99_s`` is the 99th percentile of (write-back time - due time)
with every timer due at the same instant (how long the last ones wait behind the others);
``rss_waiting_mb`` is this process's RSS with every run
waiting (before firing), ``rss_start_mb`` before the runs were made.

``intake``: ``--events`` track events of 10,000 users (50 event names) applied in windows of 5,000
(the delivery engine's default) against ``--workflows`` workflows, each triggered by one event name
and exited by another; ``events_per_s`` counts events applied (profiles, counted events, exits,
new runs) per second.

``lateness``: ``--runs`` runs waiting until a time of their own (``wait = { until_trait }``); ``--due``
of them fall due one after another at ``--rate`` a second, the others days later (pending all along).
The runner's own loop (``WorkflowRunner.run``: its polling, the pending-timers gauge, pruning) fires
them on the clock it reads; ``lateness_p50_s``/``p99``/``max`` are the lateness the engine recorded
for each timer (its step's ``late_seconds``: when the runner took it up, minus its due time).

``role-rss``: a journal with ``--runs`` waiting runs (made as ``timers`` does, waits of a day), then
``sgbridge serve --role workflows`` on it with its defaults (a subprocess); ``rss_mb`` is that
process's peak RSS over 20 s of it running (the gauge counts the pending timers every 10 s).

``timers``, ``intake`` and ``lateness`` run in this process (the intake and the runner are library
code of the ``workflows`` role); each prints a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from sgbridge.destinations.workflows import WorkflowIntake
from sgbridge.journal import Journal
from sgbridge.journal.workflow_runs import WorkflowRuns
from sgbridge.model import StoredEvent
from sgbridge.settings import Settings
from sgbridge.workflows.engine import Engine, SimulatedActions, WorkflowRunner

WINDOW = 5000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _stored(seq: int, body: dict[str, Any]) -> StoredEvent:
    return StoredEvent(seq, "segment:api", "track", time.time(), hashlib.sha256(b"%d" % seq).digest()[:16],
                       orjson.dumps(body))


async def timers(count: int) -> dict[str, Any]:
    settings = Settings(workflows=[{"name": "w", "trigger": 'event = "Cart Abandoned"',
                                    "steps": [{"wait": "1h"}, {"exit": "done"}]}])
    workflows = settings.compiled_workflows()
    start_rss = rss_mb()
    with tempfile.TemporaryDirectory() as folder:
        journal = Journal(f"sqlite:///{folder}/journal.db", relaxed_progress=True)  # as the workflows role
        clock = Clock()
        runs = WorkflowRuns(journal)
        runner = WorkflowRunner(Engine(workflows, runs, SimulatedActions(), settings.workflow_engine), runs,
                                settings.workflow_engine, clock=clock)
        intake = WorkflowIntake(settings, workflows, journal, clock=clock)
        made = time.perf_counter()
        for lo in range(0, count, WINDOW):
            await intake.deliver([_stored(i + 1, {"type": "track", "userId": f"u{i}", "event": "Cart Abandoned"})
                                  for i in range(lo, min(lo + WINDOW, count))])
        while await runner.run_once():  # every run takes its first step: they all wait now
            pass
        made = time.perf_counter() - made
        waiting_rss = rss_mb()
        clock.offset = 3601.0  # every timer is due at this instant
        began = time.perf_counter()
        fired = 0
        lateness: list[float] = []
        while n := await runner.run_once():
            fired += n
            lateness += [time.perf_counter() - began] * n  # fired (written back) - due
        seconds = time.perf_counter() - began
        states = runs.counts().get("w", {})
        journal.close()
    lateness.sort()
    return {"measure": "timers", "runs": count, "make_seconds": round(made, 2), "fired": fired,
            "fire_seconds": round(seconds, 2), "fired_per_s": round(fired / seconds), "completed": states,
            "lateness_p99_s": round(lateness[max(int(len(lateness) * 0.99) - 1, 0)], 3) if lateness else None,
            "rss_start_mb": round(start_rss), "rss_waiting_mb": round(waiting_rss)}


async def intake(events: int, workflows_n: int) -> dict[str, Any]:
    names = [f"Event {i}" for i in range(50)]
    configs = [{"name": f"w{i}", "trigger": f'event = "{names[i % 50]}"',
                "exit_on": [f'event = "{names[(i + 1) % 50]}"'], "steps": [{"wait": "1d"}, {"exit": "done"}]}
               for i in range(workflows_n)]
    settings = Settings(workflows=configs)
    workflows = settings.compiled_workflows()
    with tempfile.TemporaryDirectory() as folder:
        journal = Journal(f"sqlite:///{folder}/journal.db", relaxed_progress=True)
        feed = WorkflowIntake(settings, workflows, journal)
        bodies = [{"type": "track", "userId": f"u{i % 10_000}", "event": names[i % 50], "properties": {"n": i}}
                  for i in range(events)]
        windows = [[_stored(i + 1, bodies[i]) for i in range(lo, min(lo + WINDOW, events))]
                   for lo in range(0, events, WINDOW)]
        began = time.perf_counter()
        for window in windows:
            await feed.deliver(window)
        seconds = time.perf_counter() - began
        started = sum(sum(states.values()) for states in WorkflowRuns(journal).counts().values())
        journal.close()
    return {"measure": "intake", "events": events, "workflows": workflows_n, "seconds": round(seconds, 2),
            "events_per_s": round(events / seconds), "runs_started": started}


async def _make_waiting(journal: Journal, settings: Settings, clock: Clock, count: int,
                        body: Any) -> WorkflowRunner:
    """``count`` runs through the intake, each taken to its first wait; the runner."""
    workflows = settings.compiled_workflows()
    runs = WorkflowRuns(journal)
    runner = WorkflowRunner(Engine(workflows, runs, SimulatedActions(), settings.workflow_engine), runs,
                            settings.workflow_engine, clock=clock)
    intake = WorkflowIntake(settings, workflows, journal, clock=clock)
    for lo in range(0, count, WINDOW):
        await intake.deliver([_stored(i + 1, body(i)) for i in range(lo, min(lo + WINDOW, count))])
    while await runner.run_once():
        pass
    return runner


async def lateness(count: int, due: int, rate: float) -> dict[str, Any]:
    settings = Settings(workflows=[{"name": "w", "trigger": 'event = "Cart Abandoned"',
                                    "steps": [{"wait": {"until_trait": "due_at"}}, {"exit": "done"}]}])
    first = 4_000_000_000.0  # 2096: the runs are made before any is due, on whatever machine
    with tempfile.TemporaryDirectory() as folder:
        journal = Journal(f"sqlite:///{folder}/journal.db", relaxed_progress=True)
        clock = Clock()
        made = time.perf_counter()
        runner = await _make_waiting(journal, settings, clock, count, lambda i: {
            "type": "track", "userId": f"u{i}", "event": "Cart Abandoned",
            "traits": {"due_at": first + i / rate if i < due else first + 10 * 86400}})
        made = time.perf_counter() - made
        clock.offset = first - time.time()  # the first timer is due now; the others come due at --rate
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(due / rate + 5.0)
        runner.stop()
        await task
        rows = journal.run_sync(lambda conn: conn.execute(
            "SELECT output FROM wf_steps WHERE position = '0' AND state = 'done'").fetchall())
        journal.close()
    late = sorted(float(orjson.loads(r[0])["late_seconds"]) for r in rows)

    def pct(q: float) -> float | None:
        return round(late[max(int(len(late) * q) - 1, 0)], 3) if late else None

    return {"measure": "lateness", "runs": count, "due": due, "rate_per_s": rate, "make_seconds": round(made, 1),
            "fired": len(late), "lateness_p50_s": pct(0.5), "lateness_p99_s": pct(0.99),
            "lateness_max_s": late[-1] if late else None}


async def role_rss(count: int) -> dict[str, Any]:
    import os
    import socket
    import subprocess
    import sys

    workflow = {"name": "w", "trigger": 'event = "Cart Abandoned"', "steps": [{"wait": "1d"}, {"exit": "done"}]}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/journal.db"
        journal = Journal(url, relaxed_progress=True)
        await _make_waiting(journal, Settings(workflows=[workflow]), Clock(), count, lambda i: {
            "type": "track", "userId": f"u{i}", "event": "Cart Abandoned"})
        pending = await WorkflowRuns(journal).timers_pending()
        journal.close()
        config = Path(folder) / "sgbridge.toml"
        config.write_text(f'database_url = "{url}"\n[warehouse]\nenabled = false\n[[workflows]]\nname = "w"\n'
                          'trigger = \'event = "Cart Abandoned"\'\nsteps = [{ wait = "1d" }, { exit = "done" }]\n')
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "sgbridge", "serve", "--role", "workflows", "--config",
                                 str(config), "--port", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ, "SGBRIDGE_WAREHOUSE__ENABLED": "false"})
        peak = 0.0
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise SystemExit("serve --role workflows exited")
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(30)
    return {"measure": "role-rss", "runs": count, "timers_pending": pending, "rss_mb": round(peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="measure", required=True)
    t = sub.add_parser("timers")
    t.add_argument("--runs", type=int, default=100_000)
    i = sub.add_parser("intake")
    i.add_argument("--events", type=int, default=100_000)
    i.add_argument("--workflows", type=int, default=50)
    late = sub.add_parser("lateness")
    late.add_argument("--runs", type=int, default=1_000_000)
    late.add_argument("--due", type=int, default=300_000)
    late.add_argument("--rate", type=float, default=5000.0)
    r = sub.add_parser("role-rss")
    r.add_argument("--runs", type=int, default=1_000_000)
    args = parser.parse_args()
    chosen = {"timers": lambda: timers(args.runs), "intake": lambda: intake(args.events, args.workflows),
              "lateness": lambda: lateness(args.runs, args.due, args.rate), "role-rss": lambda: role_rss(args.runs)}
    result = asyncio.run(chosen[args.measure]())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
