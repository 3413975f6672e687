"""``sgbridge actions test``: one action on one event (or a batch), requests and outcomes as JSON.

The command line's "Test mapping" button: the event goes through the mapping (with the
action's defaults unless turned off), the action's checks and the real request code, against
SendGrid (or the emulator at ``--endpoint``). The trigger is reported, not applied, as in
Segment's UI, so a mapping can be tried on any event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from sgbridge.actions.runner import ActionRunner, check_subscription
from sgbridge.actions.sendgrid.api import RequestRecord


async def run_action_test(destination: str, action: str, settings: dict[str, Any], mapping: dict[str, Any],
                          event_or_batch: dict[str, Any] | list[Any], *, endpoint: str | None = None,
                          use_defaults: bool = True, client: httpx.AsyncClient | None = None,
                          clock: Callable[[], float] = time.time, job_poll_seconds: float = 0.5) -> dict[str, Any]:
    """Run it; the report has ``requests`` (in the order made), ``results`` and ``multistatus``."""
    subscription = check_subscription("mapping", destination, action, mapping, None, use_defaults,
                                      require_trigger=False)
    batch = isinstance(event_or_batch, list)
    events = event_or_batch if isinstance(event_or_batch, list) else [event_or_batch]
    requests: list[RequestRecord] = []

    def record(entry: RequestRecord) -> None:
        requests.append(entry)

    own_client = client is None
    http = client or httpx.AsyncClient()
    try:
        runner = ActionRunner(destination, settings, [subscription], http, endpoint=endpoint, on_request=record,
                              clock=clock, job_poll_seconds=job_poll_seconds, max_concurrency=1)
        planned = []
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                raise ValueError(f"event {index} is not a JSON object")
            planned.append(runner.plan(index, event, ignore_triggers=True))
        results = await runner.run(planned, batch_requests=batch)
    finally:
        if own_client:
            await http.aclose()
    trigger = subscription.trigger
    return {
        "destination": subscription.action.destination,
        "action": subscription.action.key,
        "mode": "batch" if batch else "single",
        "mapping": subscription.mapping,
        "requests": [r.as_json() for r in requests],
        "results": [
            {"index": r.ref, "outcome": r.kind, "status": r.status, "message": r.message or None,
             "trigger_matches": None if trigger is None else trigger.matches(events[r.ref]), **r.detail}
            for r in results
        ],
        "multistatus": [r.as_multistatus() for r in results],
    }
