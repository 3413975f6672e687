"""The console on a big journal: every page's time with 1,000,000 events stored (issue 14's goal:
none over 300 ms), and what its search index costs.

    .venv/bin/python bench/console.py [--events 1000000] [--repeat 15]

Fills a SQLite journal through the product's own parse and append (1,000-event requests of
SendGrid events, 20,000 distinct addresses), plus 20,000 dead letters and 20,000 workflow runs
(written as the journal stores them), builds the console's search index from the log (its rate
printed), then times each page through the app (httpx's ASGI transport, no socket: the page's
own time), logged in. One JSON line per page (p50/max ms), then a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def fill(journal, events: int) -> None:  # type: ignore[no-untyped-def]
    from sgbridge.inbound.sendgrid import parse_events
    from sgbridge.model import InboundRequest

    kinds = ["delivered", "open", "click", "processed", "bounce"]
    started = time.perf_counter()
    for lo in range(0, events, 1000):
        batch = [{"email": f"user{(i * 7919) % 20_000}@example.com", "timestamp": 1_764_000_000 + i,
                  "event": kinds[i % 5], "sg_event_id": f"bench-{i:08d}", "sg_message_id": f"m{i // 4}.filter"}
                 for i in range(lo, min(events, lo + 1000))]
        body = orjson.dumps(batch)
        parsed = parse_events("default", body)
        journal.append_sync(InboundRequest("default", time.time(), len(body), parsed))
    print(json.dumps({"measure": "fill", "events": events, "seconds": round(time.perf_counter() - started, 1)}),
          flush=True)


def extras(journal, count: int) -> None:  # type: ignore[no-untyped-def]
    """Dead letters and workflow runs, as the delivery engine and the runner write them."""
    now = time.time()

    def job(conn) -> None:  # type: ignore[no-untyped-def]
        conn.executemany("INSERT INTO outcomes (destination, seq, status, reason, status_code, attempts, "
                         "updated_at) VALUES (?, ?, 'rejected', ?, 400, 1, ?)",
                         [("segment", 1 + i * 37, f"HTTP 400: bad event {i % 50}", now) for i in range(count)])
        conn.executemany("INSERT INTO wf_runs (workflow, run_key, state, position, due_at, trigger_seq, "
                         "started_at, updated_at, context) VALUES ('recovery', ?, ?, '1', ?, ?, ?, ?, '{}')",
                         [(f"user:{i}", "waiting" if i % 2 else "completed", now + i if i % 2 else None,
                           2 + i * 41, now, now) for i in range(count)])

    journal.run_sync(job)


async def measure(folder: Path, repeat: int) -> dict[str, float]:
    from sgbridge.app import build_app
    from sgbridge.console.users import Users
    from sgbridge.settings import load_settings

    app = build_app(load_settings(None))
    bridge = app.state.bridge
    Users(bridge.journal, bridge.settings.console).add("bench", "operator", "a long bench password")
    console = app.state.console
    started = time.perf_counter()
    indexed = 0
    while taken := await console.search.catch_up_once():
        indexed += taken
    seconds = time.perf_counter() - started
    print(json.dumps({"measure": "search_index_build", "events": indexed, "seconds": round(seconds, 1),
                      "events_per_s": round(indexed / seconds)}), flush=True)
    await console.activity.refresh(min_interval=0)
    times: dict[str, float] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        login = await client.get("/ui/login")
        token = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
        await client.post("/ui/login", data={"csrf": token, "name": "bench", "password": "a long bench password"})
        top = bridge.journal.latest_seq()
        pages = {
            "overview": "/ui/",
            "events_latest": "/ui/events",
            "events_deep_page": f"/ui/events?before={top // 2}",
            "search_sg_event_id": "/ui/events?q=bench-00500000",
            "search_seq": f"/ui/events?q={top // 3}",
            "search_email": "/ui/events?email=user1234@example.com",
            "search_message": "/ui/events?message=m12345.filter",
            "search_time": "/ui/events?since=" + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 30)),
            "event_page": f"/ui/events/{top // 2}",
            "dead_letters": "/ui/dead-letters",
            "dead_letters_by_reason": "/ui/dead-letters?reason=bad+event+7",
            "dead_letters_deep_page": "/ui/dead-letters?after=10000",
            "runs": "/ui/runs",
            "runs_waiting": "/ui/runs?state=waiting&workflow=recovery",
            "sync": "/ui/sync",
            "config": "/ui/config",
            "tail": "/ui/tail",
        }
        for name, path in pages.items():
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                response = await client.get(path)
                samples.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
            times[name] = max(samples)
            print(json.dumps({"measure": "page", "page": name, "path": path, "p50_ms": round(statistics.median(
                samples), 1), "max_ms": round(max(samples), 1), "bytes": len(response.content)}), flush=True)
    await console.close()
    bridge.journal.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    from sgbridge.journal import Journal

    with tempfile.TemporaryDirectory(prefix="sgbridge-bench-console-") as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'journal.db'}"
        os.environ.update(SGBRIDGE_DATABASE_URL=url, SGBRIDGE_WAREHOUSE__ENABLED="false", SEGMENT_WRITE_KEY="bench",
                          SENDGRID_WEBHOOK_PUBLIC_KEY="")
        journal = Journal(url)
        fill(journal, args.events)
        extras(journal, 20_000)
        journal.close()
        times = asyncio.run(measure(folder, args.repeat))
    worst = max(times, key=lambda k: times[k])
    print(json.dumps({"summary": {"events": args.events, "slowest_page": worst,
                                  "slowest_max_ms": round(times[worst], 1),
                                  "pages_over_300_ms": sorted(k for k, v in times.items() if v > 300)}}))


if __name__ == "__main__":
    main()
