"""Dotdigital's Add or Update Contact: events per second, and API requests per 10,000 contact changes.

    .venv/bin/python bench/dotdigital.py [--changes 10000] [--contacts 2500]

``--changes`` 'Add or Update Contact' events for ``--contacts`` contacts (so each contact changes
several times; its data fields and list vary), run through the product's action runner with the
destination's defaults (``[actions.<name>]``: ``window_events``, ``max_concurrency``) against the
Dotdigital emulator on a real socket. ``events_per_s`` is changes applied per second;
``requests_per_10000`` counts the API requests the emulator received, scaled to 10,000 changes
(Segment's code makes one PATCH per change; sgbridge coalesces a contact's changes within a window
into one). The emulator's rate limits are raised out of the way: the figure is sgbridge's, not the
account's tier. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx

from sgbridge.actions.runner import ActionRunner, check_subscription
from sgbridge.emulators.dotdigital import create_dotdigital_emulator
from sgbridge.emulators.serving import serve_in_thread
from sgbridge.settings import ActionDestinationSettings

USER, PASSWORD = "bench@apiconnector.com", "bench"


async def run(changes: int, contacts: int, url: str) -> dict[str, float]:
    defaults = ActionDestinationSettings(destination="dotdigital")
    events = [{"type": "track", "event": "Add or Update Contact", "userId": f"u{i % contacts}", "messageId": f"m{i}",
               "properties": {"email": f"user{i % contacts}@example.com", "plan": ("free", "pro", "team")[i % 3],
                              "seats": i % 50}} for i in range(changes)]
    async with httpx.AsyncClient(timeout=60) as client:
        await client.post(f"{url}/_emulator/data-fields", json=[{"name": "PLAN", "type": "String"},
                                                                {"name": "SEATS", "type": "Numeric"}])
        lists = (await client.post(f"{url}/_emulator/lists", json=[{"name": "All"}])).json()
        list_id = (lists["lists"] if isinstance(lists, dict) else lists)[0]["id"]
        for tier in ("low", "medium", "high"):
            await client.post(f"{url}/_emulator/rate_limits", json={"tier": tier, "limit": 10**9, "period": 60})
        sub = check_subscription("bench", "dotdigital", "addContactToList", {"listId": list_id, "dataFields": {
            "PLAN": {"@path": "$.properties.plan"}, "SEATS": {"@path": "$.properties.seats"}}}, None)
        runner = ActionRunner("dotdigital", {"username": USER, "password": PASSWORD}, [sub], client, endpoint=url,
                              max_concurrency=defaults.max_concurrency)
        await client.delete(f"{url}/_emulator/requests")
        began = time.perf_counter()
        done = 0
        for lo in range(0, changes, defaults.window_events):
            window = events[lo:lo + defaults.window_events]
            results = await runner.run([runner.plan(lo + n, e) for n, e in enumerate(window)])
            done += sum(r.kind == "delivered" for r in results)
        seconds = time.perf_counter() - began
        received = (await client.get(f"{url}/_emulator/requests")).json()
        requests = received.get("total", len(received.get("requests", [])))
    return {"measure": "dotdigital-add-or-update", "changes": changes, "contacts": contacts, "delivered": done,
            "seconds": round(seconds, 2), "events_per_s": round(changes / seconds),
            "requests": requests, "requests_per_10000": round(requests * 10_000 / changes),
            "window_events": defaults.window_events, "max_concurrency": defaults.max_concurrency}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=2_500)
    args = parser.parse_args()
    app = create_dotdigital_emulator(users={USER: PASSWORD}, job_delay_seconds=0.0)
    with serve_in_thread(app) as url:
        print(json.dumps(asyncio.run(run(args.changes, args.contacts, url))))


if __name__ == "__main__":
    main()
