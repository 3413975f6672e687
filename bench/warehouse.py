"""Warehouse benchmarks: SendGrid events into DuckDB, and the object sync of a large account.

    .venv/bin/python bench/warehouse.py load [--events 1000000] [--batch 200000] [--runs 3]
    .venv/bin/python bench/warehouse.py drain [--events 1000000] [--runs 3]
    .venv/bin/python bench/warehouse.py sync [--contacts 1000000] [--runs 3]

``load``: events are generated up front (EventFactory, distinct), then loaded in batches of
``--batch`` (the ``warehouse.flush_events`` default) into a fresh DuckDB file through the loader
``serve`` uses, configured as ``serve`` configures it; ``seconds`` covers building rows and Arrow
tables, dlt's extract/normalize/load and the exactly-once check, until every event is committed;
``close_seconds`` is DuckDB's checkpoint at the end (folding its WAL into the file; ``serve`` does
it when loads pause); ``rss_added_mb`` is the highest RSS while loading over the RSS before (the
input events themselves are not counted).

``drain``: the whole way, as a user runs it. ``sgbridge serve`` (its own process, SQLite journal,
the warehouse off) takes the events as signed webhook POSTs of 1,000 events; then, on a copy of
that journal for each run, ``serve`` starts with the warehouse on (its defaults: DuckDB) and loads
the backlog. ``seconds`` runs from starting that process until its ``/metrics`` count every event
delivered to the warehouse (committed in DuckDB); it includes the process's start and reading the
events from the journal. ``peak_rss_mb`` is that of all of serve's processes together (the
supervisor and its roles).

``sync``: ``sgbridge emulate sendgrid --seed-contacts N`` runs as its own process, and
``sgbridge sync -c recipients`` as another (a fresh journal and DuckDB file each run); the time is
the sync command's, and the peak RSS is the sync process's own (the emulator's is not counted).

Each run prints a JSON line; the last line is the summary of medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson

from sgbridge.emulators.event_factory import EventFactory
from sgbridge.model import StoredEvent
from sgbridge.settings import WarehouseSettings

WAREHOUSE_DEFAULTS = WarehouseSettings()


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class _PeakRss(threading.Thread):
    """The process's highest RSS while loading, sampled every 20 ms (ru_maxrss would report the
    generation of the input, which peaks higher)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _rss_mb()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.02):
            self.peak = max(self.peak, _rss_mb())


def load(args: argparse.Namespace) -> list[dict[str, float]]:
    from sgbridge.warehouse.keeper import DuckDBKeeper
    from sgbridge.warehouse.loader import Warehouse
    from sgbridge.warehouse.location import dlt_destination

    factory = EventFactory(7)
    now = time.time()
    events = [StoredEvent(i + 1, "default", e["event"], now, b"k", orjson.dumps(e))
              for i, e in enumerate(factory.batch(args.events))]
    # The input stands in for the journal's rows: serve holds one window of them, not a million, so
    # the garbage collector is told not to walk them (it otherwise would on every collection).
    gc.freeze()
    results = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            # configured as `serve` configures it (DuckDB memory limit, the file kept open between loads)
            config = WarehouseSettings(credentials=str(folder / "w.duckdb"), duckdb_memory_limit=args.memory_limit)
            keeper = DuckDBKeeper(str(folder / "w.duckdb"))
            loader = Warehouse(dlt_destination(config, folder), folder / "dlt", keeper=keeper).loader("sendgrid")
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            rss_before = _rss_mb()
            sampler = _PeakRss()
            sampler.start()
            started = time.perf_counter()
            with ThreadPoolExecutor(args.in_flight) as pool:
                loads = [pool.submit(loader.load, events[start:start + args.batch])
                         for start in range(0, len(events), args.batch)]
                loaded = sum(f.result() for f in loads)
            seconds = time.perf_counter() - started
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            sampler.stopping.set()
            sampler.join()
            cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
            closing = time.perf_counter()
            keeper.close()  # DuckDB's checkpoint of what is still in its WAL (serve: after 2 s idle)
            close_seconds = time.perf_counter() - closing
            assert loaded == len(events), loaded
            size = (folder / "w.duckdb").stat().st_size
        result = {"run": run, "events": args.events, "batch": args.batch, "in_flight": args.in_flight,
                  "seconds": round(seconds, 2), "close_seconds": round(close_seconds, 2),
                  "cpu_seconds": round(cpu, 1), "rss_added_mb": round(sampler.peak - rss_before),
                  "events_per_s": round(args.events / seconds), "duckdb_mb": round(size / 1e6, 1)}
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def drain(args: argparse.Namespace) -> list[dict[str, float]]:
    import shutil

    from ingest import _group_rss_kb, _metric, _post_each_once, bridge, make_bodies  # bench/ingest.py
    from sgbridge.emulators.webhook_signing import generate_keypair

    keys = generate_keypair()
    results = []
    with tempfile.TemporaryDirectory(prefix="sgbridge-bench-") as tmp:
        folder = Path(tmp)
        bodies = make_bodies(folder, 1000, args.events // 1000, keys.private_key_pem().encode())
        with bridge(keys.public_key_base64, folder, None, keep_journal=True,
                    SGBRIDGE_WAREHOUSE__ENABLED="false") as (url, _):
            _post_each_once(url, bodies, threads=4)
            stored = _metric(url, "sgbridge_inbound_events_total", 'result="accepted"')
        for run in range(args.runs):
            run_folder = folder / f"run{run}"
            run_folder.mkdir()
            shutil.copy(folder / "journal.db", run_folder / "journal.db")  # serve left no WAL behind
            started = time.perf_counter()
            with bridge(keys.public_key_base64, run_folder, None,
                        SGBRIDGE_WAREHOUSE__CREDENTIALS=str(run_folder / "w.duckdb"),
                        SGBRIDGE_WAREHOUSE__PIPELINES_DIR=str(run_folder / "dlt")) as (url, proc):
                loaded, peak = 0.0, 0
                while loaded < stored:
                    time.sleep(0.1)
                    peak = max(peak, _group_rss_kb(proc.pid))  # serve's processes, all roles
                    loaded = _metric(url, "sgbridge_delivery_events_total", 'outcome="delivered"')
                    if _metric(url, "sgbridge_delivery_events_total", 'outcome="rejected"'):
                        raise RuntimeError("the warehouse rejected events")
                seconds = time.perf_counter() - started
            result = {"run": run, "events": int(stored), "seconds": round(seconds, 2),
                      "events_per_s": round(stored / seconds), "peak_rss_mb": round(peak / 1024)}
            print(json.dumps(result), flush=True)
            results.append(result)
            shutil.rmtree(run_folder)
    return results


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sync(args: argparse.Namespace) -> list[dict[str, float]]:
    port = _free_port()
    emulator = subprocess.Popen([sys.executable, "-m", "sgbridge", "emulate", "sendgrid", "--port", str(port),
                                 "--seed-contacts", str(args.contacts), "--job-delay", "0.5"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:  # seeding a million contacts takes the emulator a while
            try:
                if httpx.get(f"{url}/_emulator/stats", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or emulator.poll() is not None:
                raise RuntimeError("the SendGrid emulator did not start")
            time.sleep(0.5)
        results = []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                env = {**os.environ, "SENDGRID_API_KEY": "SG.bench", "SENDGRID_API_ENDPOINT": url,
                       "SGBRIDGE_DATABASE_URL": f"sqlite:///{tmp}/journal.db",
                       "SGBRIDGE_WAREHOUSE__CREDENTIALS": f"{tmp}/w.duckdb",
                       "SGBRIDGE_WAREHOUSE__PIPELINES_DIR": f"{tmp}/dlt",
                       "SGBRIDGE_SYNC__EXPORT_POLL_SECONDS": "0.2"}
                started = time.perf_counter()
                child = subprocess.Popen([sys.executable, "-m", "sgbridge", "sync", "-c", "recipients", "--json"],
                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                assert child.stdout is not None
                out = child.stdout.read()
                _, _, usage = os.wait4(child.pid, 0)  # the sync process's own peak RSS
                seconds = time.perf_counter() - started
            report = orjson.loads(out)
            rows = report["collections"][0]["rows"]
            peak = usage.ru_maxrss / 1024
            result = {"run": run, "contacts": rows, "seconds": round(seconds, 1),
                      "contacts_per_s": round(rows / seconds), "peak_rss_mb": round(peak)}
            print(json.dumps(result), flush=True)
            results.append(result)
        return results
    finally:
        emulator.terminate()
        emulator.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["load", "drain", "sync"])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=WAREHOUSE_DEFAULTS.flush_events)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-limit", default=WAREHOUSE_DEFAULTS.duckdb_memory_limit,
                        help="DuckDB memory limit (warehouse.duckdb_memory_limit)")
    parser.add_argument("--in-flight", type=int, default=1, help="batches loading at once (serve: 1)")
    args = parser.parse_args()
    results = {"load": load, "drain": drain, "sync": sync}[args.mode](args)
    keys = [k for k in results[0] if k != "run"]
    print(json.dumps({"summary": args.mode, **{k: statistics.median(r[k] for r in results) for k in keys}}))


if __name__ == "__main__":
    main()
