"""Ingestion and end-to-end benchmarks: signed webhook POSTs → durable commit (→ Segment emulator).

Starts `sgbridge serve` (SQLite journal in a temp dir) as its own process and drives it with `wrk`
(Debian package `wrk`; one C thread, 64 connections) over pre-signed bodies whose events are all
distinct, so every event is really stored (no body is sent twice; duplicates would be cheap). The
server's own counters (/metrics) are the source of the stored-event figures.

    .venv/bin/python bench/ingest.py ingest [--runs 3] [--seconds 4] [--sizes 1,100,1000]
    .venv/bin/python bench/ingest.py e2e [--runs 3] [--seconds 8]          # max rate, delivered to Segment
    .venv/bin/python bench/ingest.py latency [--rate 5000] [--seconds 20]  # paced load, POST → Segment p50/p99
    .venv/bin/python bench/ingest.py backlog [--events 1000000]            # peak RSS while a backlog drains

Each measurement prints one JSON line; the last line is a JSON summary of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import Pool
from pathlib import Path

import httpx

from sgbridge.emulators.event_factory import EventFactory
from sgbridge.emulators.webhook_signing import frame_events, generate_keypair, load_private_key_pem, sign

ALL_EVENTS = ["processed", "delivered", "open", "machine_open", "click", "dropped", "bounce", "deferred",
              "unsubscribe", "group_unsubscribe", "group_resubscribe", "spamreport"]


# -- load preparation -------------------------------------------------------------------------
@dataclass
class Bodies:
    data_file: Path
    manifest: Path
    count: int
    size: int
    sg_event_ids: list[list[str]]  # per body, for latency matching


def _make_chunk(args: tuple[int, int, int, bytes, float]) -> list[tuple[bytes, str, str, list[str]]]:
    seed, size, count, private_pem, marketing_share = args
    key = load_private_key_pem(private_pem)
    factory = EventFactory(seed, marketing_share=marketing_share)
    out = []
    for _ in range(count):
        events = factory.batch(size)
        body = frame_events(events)
        ts = str(int(time.time()))
        out.append((body, sign(key, ts, body), ts, [str(e["sg_event_id"]) for e in events]))
    return out


def make_bodies(folder: Path, size: int, count: int, private_pem: bytes, seed: int = 1,
                marketing_share: float = 0.3) -> Bodies:
    """Sign `count` bodies of `size` distinct events, written back to back for the wrk script.

    ``marketing_share``: the share of Marketing Campaigns events (Single Sends carry millisecond
    timestamps, as SendGrid sends them)."""
    per_chunk = max(1, 20_000 // size)
    jobs = [(seed * 1_000_003 + i, size, min(per_chunk, count - i * per_chunk), private_pem, marketing_share)
            for i in range((count + per_chunk - 1) // per_chunk)]
    data_file, manifest = folder / f"bodies-{size}.bin", folder / f"bodies-{size}.tsv"
    ids: list[list[str]] = []
    offset = 0
    with Pool(2) as pool, data_file.open("wb") as data, manifest.open("w") as lines:
        for chunk in pool.imap(_make_chunk, jobs):
            for body, signature, ts, event_ids in chunk:
                data.write(body)
                lines.write(f"{offset}\t{len(body)}\t{signature}\t{ts}\n")
                offset += len(body)
                ids.append(event_ids)
    return Bodies(data_file, manifest, count, size, ids)


# -- processes --------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


@contextmanager
def segment_emulator(keep_messages: bool) -> Iterator[str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "sgbridge", "emulate", "segment", "--port", str(port)]
    # Segment's servers are not on the machine under test: the stand-in runs at the lowest priority,
    # so that what it takes of the two cores is what nothing else wants.
    proc = subprocess.Popen(["nice", "-n", "19", *cmd] + ([] if keep_messages else ["--no-keep-messages"]),
                            stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/_emulator/stats")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


ACTION_CONFIG = """
[segment_inbound]
write_keys = ["bench-inbound"]

[actions.sendgrid]
destination = "sendgrid"
endpoint = "http://127.0.0.1:9"
settings = { sendGridApiKey = "SG.bench" }

[[actions.sendgrid.subscriptions]]
action = "updateUserProfile"
trigger = 'type = "identify"'
"""


def variant_env(variant: str, folder: Path, segment_url: str | None) -> tuple[dict[str, str], list[str]]:
    """``on``: the defaults with every destination on (Segment, the warehouse, one action
    destination); ``off``: all of them off. ``single-…``: the same, all roles in one process.
    ``…-noconsole``: the same without the console (the web role and its search index)."""
    args = ["--role", "ingest,deliver,warehouse"] if variant.startswith("single-") else []
    extra = {"SGBRIDGE_CONSOLE__ENABLED": "false"} if variant.endswith("-noconsole") else {}
    variant = variant.removesuffix("-noconsole")
    if variant.endswith("off"):
        return {"SGBRIDGE_WAREHOUSE__ENABLED": "false", **extra}, args
    config = folder / "actions.toml"
    config.write_text(ACTION_CONFIG)
    env = {"SGBRIDGE_CONFIG": str(config), "SGBRIDGE_WAREHOUSE__CREDENTIALS": str(folder / "bench.duckdb"),
           "SGBRIDGE_WAREHOUSE__PIPELINES_DIR": str(folder / "dlt")}
    return {**env, **extra}, args


@contextmanager
def bridge(public_key: str, folder: Path, segment_url: str | None, keep_journal: bool = False,
           serve_args: tuple[str, ...] = (), **extra_env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    env = {**os.environ, "SGBRIDGE_WAREHOUSE__CREDENTIALS": str(folder / "bench.duckdb"),
           "SGBRIDGE_WAREHOUSE__PIPELINES_DIR": str(folder / "dlt"), **extra_env,
           "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key,
           "SGBRIDGE_DATABASE_URL": f"sqlite:///{folder / 'journal.db'}", "SEGMENT_WRITE_KEY": "",
           "SGBRIDGE_CONSOLE__PORT": str(_free_port())}
    if segment_url:
        env.update(SEGMENT_WRITE_KEY="bench", SEGMENT_ENDPOINT=segment_url,
                   SGBRIDGE_SOURCES__DEFAULT__EVENTS=json.dumps(ALL_EVENTS))
    proc = subprocess.Popen([sys.executable, "-m", "sgbridge", "serve", "--port", str(port), *serve_args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(60)
        for suffix in ("", "-wal", "-shm") if not keep_journal else ():
            (folder / f"journal.db{suffix}").unlink(missing_ok=True)
            (folder / f"journal-search.db{suffix}").unlink(missing_ok=True)  # the console's search index
        (folder / "bench.duckdb").unlink(missing_ok=True)
        shutil.rmtree(folder / "dlt", ignore_errors=True)


def _wait_ready(url: str) -> None:
    """Until /healthz says every role is up (the supervisor starts ingest first, then the rest)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).json().get("status") == "ok":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready")


def _group_rss_kb(group: int) -> int:
    """RSS of every process of a `serve` (the supervisor and its roles) added up."""
    return _group_memory_kb(group)[0]


def _group_memory_kb(group: int) -> tuple[int, int]:
    """RSS and PSS of every process of a `serve` added up. RSS counts the pages the processes
    share (the Python interpreter, the libraries: one copy in memory) once per process; PSS shares
    each such page out among them, so the sum of PSS is what the processes take together."""
    out = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True).stdout
    rss = pss = 0
    for pid in out.split():
        with suppress(OSError, KeyError, ValueError):
            rss += _rss_kb(int(pid))["VmRSS"]
            pss += _pss_kb(int(pid))
    return rss, pss


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise KeyError("Pss")


def sqlite_baseline(folder: Path, seconds: float = 3.0, rows: int = 1000) -> float:
    """SQLite's own rate of 1,000-row inserts into the journal's events table (same schema and
    indexes, WAL, synchronous=FULL, one commit each): the ceiling ingestion is measured against."""
    from sgbridge.emulators.event_factory import EventFactory as Factory
    from sgbridge.journal.dialect import dialect_for

    path = folder / "baseline.db"
    dialect = dialect_for(f"sqlite:///{path}")
    conn = dialect.connect()
    for statement in dialect.schema().split(";"):
        if statement.strip():
            conn.execute(statement)
    bodies = [json.dumps(e).encode() for e in Factory(99).batch(rows)]
    inserted, n = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        conn.execute("BEGIN IMMEDIATE")
        request = conn.execute("INSERT INTO requests (source, received_at, event_count, body_bytes) "
                               "VALUES ('default', ?, ?, 0)", (time.time(), rows)).lastrowid
        batch = [(request, "default", time.time(), "open", os.urandom(16), os.urandom(16), body, 0) for body in bodies]
        dialect.insert_events(conn, batch)
        conn.execute("COMMIT")
        inserted += rows
        n += 1
    rate = inserted / (time.perf_counter() - started)
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return rate


def _metric(url: str, name: str, label: str) -> float:
    total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name) and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _rss_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            name, value = line.split(":")
            fields[name] = int(value.split()[0])
    return fields


def run_wrk(url: str, bodies: Bodies, seconds: float, connections: int) -> dict[str, float]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    env = {**os.environ, "SGB_DATA": str(bodies.data_file), "SGB_MANIFEST": str(bodies.manifest)}
    script = Path(__file__).with_name("wrk_bodies.lua")
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "30s", "-s", str(script),
                          url], env=env, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    if result["status_errors"] or result["socket_errors"]:
        raise SystemExit(f"wrk saw errors: {result}")
    if result["requests"] > bodies.count:
        print(f"warning: {result['requests']} requests > {bodies.count} distinct bodies", file=sys.stderr)
    return result


# -- measurements -----------------------------------------------------------------------------
def ingest(args: argparse.Namespace, folder: Path, keys: tuple[str, bytes]) -> None:
    """Ingestion with every destination on and with all off, interleaved run by run (A/B)."""
    variants = args.variants.split(",")
    summary: dict[str, dict[str, float]] = {}
    baselines = []
    for size in [int(s) for s in args.sizes.split(",")]:
        # Enough distinct bodies for the fastest plausible rate over the whole run.
        ceiling = {1: 12_000, 100: 800}.get(size, max(1, 120_000 // size))
        bodies = make_bodies(folder, size, int(ceiling * args.seconds), keys[1])
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        # Big bodies: fewer connections, or the queue of bodies in flight is the latency measured.
        connections = args.connections if size < 1000 else min(args.connections, args.big_connections)
        for run in range(args.runs):
            for variant in variants:
                env, serve_args = variant_env(variant, folder, None)
                with (segment_emulator(keep_messages=False) if variant.removesuffix("-noconsole").endswith("on")
                      else _no_segment()) as seg, \
                        bridge(keys[0], folder, seg, serve_args=tuple(serve_args), **env) as (url, _):
                    result = run_wrk(url, bodies, args.seconds, connections)
                    stored = _metric(url, "sgbridge_inbound_events_total", 'result="accepted"')
                seconds = result["duration_us"] / 1e6
                # Acknowledged (a 200 within the run), not stored: with 1,000-event bodies the POSTs
                # still in flight when wrk stops are many events, stored after the clock stopped.
                row = {"measure": "ingest", "variant": variant, "size": size, "run": run, "connections": connections,
                       "posts_per_s": result["requests"] / seconds, "events_per_s": result["requests"] * size / seconds,
                       "stored": stored, "p50_ms": result["p50_us"] / 1000, "p99_ms": result["p99_us"] / 1000}
                print(json.dumps(row), flush=True)
                runs[variant].append(row)
            if size == 1000:
                baselines.append(sqlite_baseline(folder))
                print(json.dumps({"measure": "sqlite_1000_row_inserts", "run": run,
                                  "events_per_s": baselines[-1]}), flush=True)
        for variant in variants:
            summary[f"ingest_{size}_{variant}"] = {k: statistics.median(r[k] for r in runs[variant])
                                                   for k in ("events_per_s", "posts_per_s", "p50_ms", "p99_ms")}
        if "on" in runs and "off" in runs:
            summary[f"ingest_{size}_on_vs_off"] = {"ratio": summary[f"ingest_{size}_on"]["events_per_s"]
                                                   / summary[f"ingest_{size}_off"]["events_per_s"]}
    if baselines:
        base = statistics.median(baselines)
        summary["sqlite_1000_row_inserts"] = {"events_per_s": base}
        for variant in variants:
            summary[f"ingest_1000_{variant}"]["share_of_sqlite"] = summary[f"ingest_1000_{variant}"][
                "events_per_s"] / base
    print(json.dumps({"summary": summary, "runs": args.runs, "seconds": args.seconds,
                      "connections": args.connections}))


@contextmanager
def _no_segment() -> Iterator[None]:
    yield None


def e2e(args: argparse.Namespace, folder: Path, keys: tuple[str, bytes]) -> None:
    """Maximum rate: 1,000-event POSTs as fast as they are taken, delivered to the Segment emulator."""
    bodies = make_bodies(folder, 1000, int(60 * args.seconds), keys[1])
    runs = []
    for run in range(args.runs):
        with segment_emulator(keep_messages=False) as seg, bridge(keys[0], folder, seg) as (url, _):
            started = time.perf_counter()
            load = run_wrk(url, bodies, args.seconds, 16)
            stored = _metric(url, "sgbridge_inbound_events_total", 'result="accepted"')
            while httpx.get(f"{seg}/_emulator/stats").json()["accepted"] < stored:
                time.sleep(0.02)
                if time.perf_counter() - started > 600:
                    raise SystemExit("delivery did not finish in 10 minutes")
            total = time.perf_counter() - started
        row = {"measure": "e2e", "run": run, "stored": stored,
               "ingest_events_per_s": stored / (load["duration_us"] / 1e6),
               "delivered_events_per_s": stored / total, "seconds_to_deliver_all": total}
        print(json.dumps(row), flush=True)
        runs.append(row)
    print(json.dumps({"summary": {"e2e": {k: statistics.median(r[k] for r in runs)
                                          for k in ("ingest_events_per_s", "delivered_events_per_s")}}}))


async def _paced(url: str, bodies: Bodies, rate: float, seconds: float, journal: Path | None = None,
                 ) -> tuple[dict[str, float], list[float], list[float]]:
    """Send bodies at `rate` events/s. Returns when each body's POST started (by sg_event_id),
    each POST's time to its 200, and, with the journal's path, how far behind the warehouse was
    (age of its oldest unloaded event) every half second."""
    lines = bodies.manifest.read_text().splitlines()
    data = bodies.data_file.read_bytes()
    started_at: dict[str, float] = {}
    acked_in: list[float] = []
    behind: list[float] = []
    interval = bodies.size / rate
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=64)) as client:

        async def post(i: int) -> None:
            offset, length, signature, ts = lines[i].split("\t")
            body = data[int(offset):int(offset) + int(length)]
            sent = time.time()
            response = await client.post("/webhooks/sendgrid", content=body, headers={
                "X-Twilio-Email-Event-Webhook-Signature": signature, "X-Twilio-Email-Event-Webhook-Timestamp": ts})
            response.raise_for_status()
            acked_in.append(time.time() - sent)
            for event_id in bodies.sg_event_ids[i]:
                started_at[event_id] = sent

        async def watch_warehouse() -> None:
            while journal is not None:
                behind.append(await asyncio.to_thread(_warehouse_behind, journal))
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch_warehouse())
        tasks = []
        t0 = time.perf_counter()
        for i in range(min(bodies.count, int(seconds * rate / bodies.size))):
            await asyncio.sleep(max(0.0, t0 + i * interval - time.perf_counter()))
            tasks.append(asyncio.create_task(post(i)))
        await asyncio.gather(*tasks)
        watcher.cancel()
    return started_at, acked_in, behind


def _warehouse_behind(journal: Path) -> float:
    """Seconds since the oldest event the warehouse has not loaded was received (0: none)."""
    import sqlite3

    with suppress(sqlite3.Error), sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as conn:
        row = conn.execute("SELECT position FROM cursors WHERE destination = 'warehouse'").fetchone()
        oldest = conn.execute("SELECT MIN(received_at) FROM events WHERE seq > ? AND stream = 0",
                              (row[0] if row else 0,)).fetchone()[0]
        return max(0.0, time.time() - oldest) if oldest else 0.0
    return 0.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def latency(args: argparse.Namespace, folder: Path, keys: tuple[str, bytes]) -> None:
    """A paced load of `rate` events/s with the defaults (Segment, the warehouse, an action
    destination): POST → 200, POST → accepted by the Segment emulator, and how far behind the
    warehouse is."""
    size = args.post_size
    bodies = make_bodies(folder, size, int(args.rate * args.seconds / size) + 1, keys[1])
    runs = []
    for run in range(args.runs):
        env, _ = variant_env("on", folder, None)
        with segment_emulator(keep_messages=True) as seg, bridge(keys[0], folder, seg, **env) as (url, _):
            started_at, acked_in, behind = asyncio.run(_paced(url, bodies, args.rate, args.seconds,
                                                              folder / "journal.db"))
            sent_for = time.perf_counter()
            # The server's count: the factory's re-sent events (a new id, same content) are stored once.
            stored = _metric(url, "sgbridge_inbound_events_total", 'result="accepted"')
            while httpx.get(f"{seg}/_emulator/stats").json()["accepted"] < stored:
                time.sleep(0.1)
            segment_after = time.perf_counter() - sent_for
            while _warehouse_behind(folder / "journal.db") > 0:
                time.sleep(0.2)
            warehouse_after = time.perf_counter() - sent_for
            messages = httpx.get(f"{seg}/_emulator/messages", params={"limit": len(started_at) + 10}, timeout=60)
            received = {m["properties"]["sg_event_id"]: datetime.fromisoformat(m["receivedAt"]).timestamp()
                        for m in messages.json()["messages"]}
        lat = sorted(received[k] - started_at[k] for k in started_at if k in received)
        row = {"measure": "latency", "run": run, "rate": args.rate, "post_size": size, "seconds": args.seconds,
               "events": len(lat), "post_to_200_p50_ms": _pct(acked_in, 0.5) * 1000,
               "post_to_200_p99_ms": _pct(acked_in, 0.99) * 1000,
               "to_segment_p50_ms": _pct(lat, 0.5) * 1000, "to_segment_p99_ms": _pct(lat, 0.99) * 1000,
               "to_segment_max_ms": lat[-1] * 1000, "segment_done_after_last_post_s": segment_after,
               "warehouse_behind_max_s": max(behind, default=0.0), "warehouse_done_after_last_post_s": warehouse_after}
        print(json.dumps(row), flush=True)
        runs.append(row)
    keys_ = [k for k in runs[0] if k.endswith(("_ms", "_s"))]
    print(json.dumps({"summary": {"latency": {k: statistics.median(r[k] for r in runs) for k in keys_}}}))


def _post_each_once(url: str, bodies: Bodies, threads: int) -> None:
    """Send every body exactly once (wrk sends for a duration; a backlog needs a fixed amount)."""
    from concurrent.futures import ThreadPoolExecutor

    lines = bodies.manifest.read_text().splitlines()
    data = bodies.data_file.read_bytes()

    def post_range(indexes: range) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in indexes:
                offset, length, signature, ts = lines[i].split("\t")
                client.post("/webhooks/sendgrid", content=data[int(offset):int(offset) + int(length)], headers={
                    "X-Twilio-Email-Event-Webhook-Signature": signature,
                    "X-Twilio-Email-Event-Webhook-Timestamp": ts}).raise_for_status()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post_range, [range(t, len(lines), threads) for t in range(threads)]))


def backlog(args: argparse.Namespace, folder: Path, keys: tuple[str, bytes]) -> None:
    """Store a backlog with only ingestion running, then start `serve` with its defaults (Segment
    and the warehouse) and let both drain it, sampling the RSS of every process throughout."""
    bodies = make_bodies(folder, 1000, args.events // 1000, keys[1])
    with segment_emulator(keep_messages=False) as seg:
        with bridge(keys[0], folder, seg, keep_journal=True, serve_args=("--role", "ingest")) as (url, _):
            _post_each_once(url, bodies, threads=4)
            stored = _metric(url, "sgbridge_inbound_events_total", 'result="accepted"')
        started = time.perf_counter()
        with bridge(keys[0], folder, seg, SGBRIDGE_DELIVERY__BACKOFF_MAX_SECONDS="1") as (url, proc):
            roles = {role: info["pid"] for role, info in httpx.get(f"{url}/healthz").json()["roles"].items()}
            peak, peak_pss, per_role = 0, 0, dict.fromkeys(roles, 0)
            segment_done = warehouse_done = None
            while segment_done is None or warehouse_done is None:
                rss, pss = _group_memory_kb(proc.pid)
                peak, peak_pss = max(peak, rss), max(peak_pss, pss)
                for role, pid in roles.items():
                    with suppress(OSError, KeyError):
                        per_role[role] = max(per_role[role], _rss_kb(pid)["VmRSS"])
                if segment_done is None and httpx.get(f"{seg}/_emulator/stats").json()["accepted"] >= stored:
                    segment_done = time.perf_counter() - started
                if warehouse_done is None and _metric(url, "sgbridge_delivery_events_total",
                                                      'destination="warehouse"') >= stored:
                    warehouse_done = time.perf_counter() - started
                if time.perf_counter() - started > 1200:
                    raise SystemExit("the backlog did not drain in 20 minutes")
                time.sleep(0.2)
            row = {"measure": "backlog", "events": stored, "peak_rss_all_processes_mb": peak / 1024,
                   "peak_pss_all_processes_mb": peak_pss / 1024,
                   **{f"peak_rss_{role}_mb": kb / 1024 for role, kb in per_role.items()},
                   "segment_drained_s": segment_done, "warehouse_drained_s": warehouse_done,
                   "drain_events_per_s": stored / max(segment_done, warehouse_done)}
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("measure", choices=["ingest", "e2e", "latency", "backlog"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--big-connections", type=int, default=16, help="ingest: connections for 1,000-event POSTs")
    parser.add_argument("--variants", default="on,off",
                        help="ingest: on (every destination), off (none), single-on, single-off (one process)")
    parser.add_argument("--rate", type=float, default=5000.0, help="latency: events per second")
    parser.add_argument("--post-size", type=int, default=100, help="latency: events per POST")
    parser.add_argument("--events", type=int, default=1_000_000, help="backlog: events stored before draining")
    args = parser.parse_args()
    keys = generate_keypair()
    with tempfile.TemporaryDirectory(prefix="sgbridge-bench-") as tmp:
        {"ingest": ingest, "e2e": e2e, "latency": latency, "backlog": backlog}[args.measure](
            args, Path(tmp), (keys.public_key_base64, keys.private_key_pem().encode()))


if __name__ == "__main__":
    main()
