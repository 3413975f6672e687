"""Segment → SendGrid benchmarks: identify events through the Upsert Contact action to the emulator.

Starts the SendGrid emulator (`sgbridge emulate sendgrid`, import jobs finish after --job-delay
seconds) and `sgbridge serve` (SQLite journal in a temp dir) as separate processes, posts
distinct identify events to the Tracking API (/v1/batch, 500 per request), and measures:

* ``drain``: N identify events already in the journal, then the destination switched on: events
  per second until every one is in an accepted upsert, and how many PUTs that took;
* ``latency``: identify events at a steady rate; p50/p99 from the POST to the PUT (202) that
  carried the contact, from the emulator's request log.

    .venv/bin/python bench/actions.py drain [--events 100000] [--runs 3]
    .venv/bin/python bench/actions.py latency [--rate 5000] [--seconds 20]
    (both take --window-events N --windows-in-flight N --job-delay S)

Each measurement prints one JSON line; the last line is a JSON summary of medians.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import _free_port, _wait

WRITE_KEY = "bench-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
BATCH = 500


@contextmanager
def sendgrid_emulator(job_delay: float) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sgbridge", "emulate", "sendgrid", "--port", str(port),
                             "--job-delay", str(job_delay)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/_emulator/jobs")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def bridge(folder: Path, sendgrid_url: str, enabled: bool = True,
           tuning: str = "") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``enabled=False``: no action destination, so events are only stored (the backlog to drain)."""
    config = folder / "bench.toml"
    config.write_text(f"""
[segment_inbound]
write_keys = ["{WRITE_KEY}"]

""" + (f"""
[actions.sendgrid]
endpoint = "{sendgrid_url}"
settings = {{ sendGridApiKey = "SG.bench" }}
{tuning}

[[actions.sendgrid.subscriptions]]
action = "updateUserProfile"
trigger = 'type = "identify"'
""" if enabled else ""))
    port = _free_port()
    env = {**os.environ, "SGBRIDGE_CONFIG": str(config), "SGBRIDGE_DATABASE_URL": f"sqlite:///{folder / 'j.db'}",
           "SEGMENT_WRITE_KEY": "", "SGBRIDGE_CONSOLE__PORT": str(_free_port())}
    proc = subprocess.Popen([sys.executable, "-m", "sgbridge", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/healthz")
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(30)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def identifies(start: int, count: int) -> list[dict[str, object]]:
    return [{"type": "identify", "userId": f"u{n}", "messageId": f"bench-{n}",
             "traits": {"email": f"user{n}@example.com", "first_name": f"F{n}", "last_name": "Bench",
                        "address": {"city": "Paris", "country": "FR"}}} for n in range(start, start + count)]


def post_all(url: str, total: int, threads: int = 4) -> None:
    def one(start: int) -> None:
        with httpx.Client(timeout=30) as client:
            body = {"batch": identifies(start, min(BATCH, total - start))}
            client.post(f"{url}/v1/batch", json=body, headers=AUTH).raise_for_status()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(0, total, BATCH)))


def _cursor(folder: Path) -> tuple[int, int]:
    from sgbridge.journal import Journal

    journal = Journal(f"sqlite:///{folder / 'j.db'}")
    try:
        stats = journal.stats()
        return int(stats["cursors"].get("sendgrid", 0)), int(stats["max_seq"])
    finally:
        journal.close()


def _puts(sendgrid_url: str) -> list[dict[str, object]]:
    found = httpx.get(f"{sendgrid_url}/_emulator/requests", params={"method": "PUT"}, timeout=60).json()
    return list(found["requests"])


def _tuning(args: argparse.Namespace) -> str:
    lines = []
    if args.window_events:
        lines.append(f"window_events = {args.window_events}")
    if args.windows_in_flight:
        lines.append(f"windows_in_flight = {args.windows_in_flight}")
    return "\n".join(lines)


def drain(args: argparse.Namespace) -> list[dict[str, float]]:
    results = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp, sendgrid_emulator(args.job_delay) as sendgrid_url:
            folder = Path(tmp)
            with bridge(folder, sendgrid_url, enabled=False) as (url, _):
                post_all(url, args.events)  # the journal fills; nothing is sent yet
            with bridge(folder, sendgrid_url, tuning=_tuning(args)) as (url, proc):
                started = time.monotonic()
                while True:
                    position, top = _cursor(folder)
                    if position >= top:
                        break
                    time.sleep(0.05)
                seconds = time.monotonic() - started
                rss = _peak_rss_mb(proc.pid)
            puts = _puts(sendgrid_url)
            contacts = httpx.get(f"{sendgrid_url}/v3/marketing/contacts/count",
                                 headers={"Authorization": "Bearer SG.bench"}).json()["contact_count"]
        result = {"run": run, "events": args.events, "seconds": round(seconds, 2),
                  "events_per_s": round(args.events / seconds), "puts": len(puts), "contacts": contacts,
                  "puts_per_100k": round(len(puts) * 100_000 / args.events, 1), "peak_rss_mb": rss}
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def latency(args: argparse.Namespace) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp, sendgrid_emulator(args.job_delay) as sendgrid_url:
        folder = Path(tmp)
        with bridge(folder, sendgrid_url, tuning=_tuning(args)) as (url, _):
            sent_at: dict[str, float] = {}
            per_tick = max(1, int(args.rate / 10))
            started = time.time()
            n = 0
            with httpx.Client(timeout=30) as client:
                while time.time() - started < args.seconds:
                    tick = time.time()
                    batch = identifies(n, per_tick)
                    client.post(f"{url}/v1/batch", json={"batch": batch}, headers=AUTH).raise_for_status()
                    for event in batch:
                        sent_at[str(event["traits"]["email"])] = tick  # type: ignore[index]
                    n += per_tick
                    time.sleep(max(0.0, 0.1 - (time.time() - tick)))
            deadline = time.monotonic() + 120
            while _cursor(folder)[0] < _cursor(folder)[1] and time.monotonic() < deadline:
                time.sleep(0.1)
        latencies = []
        puts = _puts(sendgrid_url)
        statuses: dict[str, int] = {}
        for put in puts:
            statuses[str(put["status"])] = statuses.get(str(put["status"]), 0) + 1
        for put in puts:
            if put["status"] != 202:
                continue
            at = float(put["received_at"])  # type: ignore[arg-type]
            body = put["json"]
            for contact in body["contacts"] if isinstance(body, dict) else []:
                if contact.get("email") in sent_at:
                    latencies.append(at - sent_at[contact["email"]])
    latencies.sort()
    result = {"rate": args.rate, "seconds": args.seconds, "events": n, "measured": len(latencies),
              "puts": len(puts), "put_statuses": statuses,
              "p50_ms": round(1000 * latencies[len(latencies) // 2]),
              "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)]),
              "max_ms": round(1000 * latencies[-1])}
    print(json.dumps(result), flush=True)
    return [result]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["drain", "latency"])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--job-delay", type=float, default=1.0)
    parser.add_argument("--window-events", type=int, default=0, help="actions.sendgrid.window_events (0: default)")
    parser.add_argument("--windows-in-flight", type=int, default=0, help="actions.sendgrid.windows_in_flight")
    args = parser.parse_args()
    results = drain(args) if args.mode == "drain" else latency(args)
    keys = [k for k in results[0] if isinstance(results[0][k], int | float) and k != "run"]  # type: ignore[misc]
    print(json.dumps({"summary": args.mode, **{k: statistics.median(r[k] for r in results) for k in keys}}))


if __name__ == "__main__":
    main()
