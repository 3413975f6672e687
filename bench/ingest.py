"""Ingestion and end-to-end benchmark: signed webhook POSTs → durable commit (→ Segment emulator).

Starts `sgbridge serve` (SQLite journal in a temp dir) and, for end-to-end, the Segment emulator
in a second process; pre-signs bodies so the load generator spends its time sending; drives
the server from several client processes. Prints one JSON object per measurement and a summary.

    .venv/bin/python bench/ingest.py [--runs 3] [--seconds 5] [--end-to-end]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from sgbridge.emulators.event_factory import EventFactory
from sgbridge.emulators.webhook_signing import frame_events, generate_keypair, sign


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def _client(url: str, bodies: list[tuple[bytes, dict[str, str]]], seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    latencies: list[float] = []
    sent = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            body, headers = bodies[i % len(bodies)]
            i += 1
            t = time.perf_counter()
            r = client.post("/webhooks/sendgrid", content=body, headers=headers)
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise SystemExit(f"HTTP {r.status_code}: {r.text}")
            sent += 1
    out.put((sent, latencies))


def measure(url: str, size: int, seconds: float, clients: int, seed: int) -> dict[str, float]:
    keys = generate_keypair()
    factory = EventFactory(seed)
    bodies = []
    for _ in range(max(4, 2000 // size)):
        body = frame_events(factory.batch(size))
        ts = str(int(time.time()))
        bodies.append((body, {"X-Twilio-Email-Event-Webhook-Signature": sign(keys.private_key, ts, body),
                              "X-Twilio-Email-Event-Webhook-Timestamp": ts}))
    return {"bodies": bodies, "key": keys.public_key_base64}  # type: ignore[dict-item]


def run_load(url: str, bodies: list, seconds: float, clients: int) -> dict[str, float]:  # type: ignore[type-arg]
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [mp.Process(target=_client, args=(url, bodies[i::clients] or bodies, seconds, out)) for i in range(clients)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join()
    posts = sum(r[0] for r in results)
    lat = sorted(x for r in results for x in r[1])
    return {"posts": posts, "elapsed_s": elapsed, "posts_per_s": posts / elapsed,
            "p50_ms": lat[len(lat) // 2] * 1000, "p99_ms": lat[int(len(lat) * 0.99)] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--end-to-end", action="store_true", help="deliver to a Segment emulator process too")
    args = parser.parse_args()
    summary = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        runs = []
        for run in range(args.runs):
            prepared = measure("", size, args.seconds, args.clients, seed=run)
            with tempfile.TemporaryDirectory() as tmp:
                port = _free_port()
                env = {**os.environ, "SENDGRID_WEBHOOK_PUBLIC_KEY": prepared["key"],
                       "SGBRIDGE_DATABASE_URL": f"sqlite:///{Path(tmp) / 'journal.db'}", "SEGMENT_WRITE_KEY": ""}
                emulator = None
                if args.end_to_end:
                    seg_port = _free_port()
                    emulator = subprocess.Popen([sys.executable, "-m", "sgbridge", "emulate", "segment", "--port",
                                                 str(seg_port), "--no-keep-messages"], stdout=subprocess.DEVNULL)
                    _wait(f"http://127.0.0.1:{seg_port}/_emulator/stats")
                    env.update(SEGMENT_WRITE_KEY="bench", SEGMENT_ENDPOINT=f"http://127.0.0.1:{seg_port}",
                               SGBRIDGE_SOURCES__DEFAULT__EVENTS=json.dumps(
                                   ["processed", "delivered", "open", "machine_open", "click", "dropped", "bounce",
                                    "deferred", "unsubscribe", "group_unsubscribe", "group_resubscribe",
                                    "spamreport"]))
                server = subprocess.Popen([sys.executable, "-m", "sgbridge", "serve", "--port", str(port)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    _wait(f"http://127.0.0.1:{port}/healthz")
                    result = run_load(f"http://127.0.0.1:{port}", prepared["bodies"], args.seconds, args.clients)
                    result.update(size=size, run=run, events_per_s=result["posts_per_s"] * size)
                    if emulator is not None:
                        # Duplicates (bodies are cycled) are removed at ingest; wait for the distinct events.
                        distinct = min(result["posts"], len(prepared["bodies"])) * size
                        t0 = time.perf_counter()
                        while httpx.get(f"http://127.0.0.1:{seg_port}/_emulator/stats").json()["accepted"] < distinct:
                            time.sleep(0.05)
                            if time.perf_counter() - t0 > 120:
                                break
                        result["drain_after_load_s"] = time.perf_counter() - t0
                    print(json.dumps(result), flush=True)
                    runs.append(result)
                finally:
                    server.terminate()
                    server.wait(10)
                    if emulator is not None:
                        emulator.terminate()
                        emulator.wait(10)
        summary[str(size)] = {k: statistics.median(r[k] for r in runs)
                              for k in ("events_per_s", "posts_per_s", "p50_ms", "p99_ms")}
    print(json.dumps({"summary": summary, "runs": args.runs, "seconds": args.seconds, "clients": args.clients}))


if __name__ == "__main__":
    main()
