"""When to try again: exponential backoff with full jitter, never sooner than the server asked."""

from __future__ import annotations

import random

from sgbridge.settings import DeliverySettings


def backoff_delay(attempt: int, settings: DeliverySettings, server_hint: float | None) -> float:
    """Delay before try number ``attempt + 1`` (``attempt`` counts failures so far, from 1)."""
    ceiling = min(settings.backoff_max_seconds, settings.backoff_initial_seconds * 2 ** min(attempt - 1, 30))
    # Full jitter: many workers failing together do not come back together.
    delay = random.uniform(ceiling / 2, ceiling)
    if server_hint is not None:
        delay = max(delay, server_hint)
    return delay
