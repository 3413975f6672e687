"""Dotdigital's tiered call rate limits, as a client sees them.

Sources (see also the package docstring):

- developer.dotdigital.com/docs/call-rate-limits: two schemes per API user. *Tiered* (the
  default for new API users): every call belongs to a tier (low: calls that import or return a
  lot of data; medium; high: light single-record calls; and unlimited ones), each tier with its
  own per-minute limit, tracked per account; past it the API answers ``429 Too Many Requests``.
  *Flat* (deprecated): a number of calls per hour, answered with ``ERROR_APIUSAGE_EXCEEDED``.
  The numbers are per account package and not published.
- The official PHP SDK (dotmailer/dotdigital-php, ``Exception/TooManyRequestsException.php``)
  reads three headers of a 429: ``x-ratelimit-scope`` (the tier), ``x-ratelimit-limit`` and
  ``x-ratelimit-reset``, the latter documented there as "the time in seconds until the rate
  limit resets". ``X-RateLimit-Remaining`` is also sent (api-evangelist's summary of the docs);
  the emulator sends all four on every tiered answer.
- The v2 spec (``POST /v2/programs/enrolments``): "your account can only call this a maximum of
  20 times per hour, across all programs": its own bucket here, answered like a tier's 429.

Which tier each endpoint is in is the emulator's own reading of the tier descriptions (the
reference pages give a tier per operation; they were not available). The defaults per minute
are illustrative; tests set their own (``rate_limits=``, ``POST /_emulator/rate_limits``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sgbridge.emulators.sendgrid.ratelimit import RateLimit

DEFAULT_TIER_LIMITS: Mapping[str, tuple[int, float]] = {
    "low": (60, 60.0),
    "medium": (600, 60.0),
    "high": (1200, 60.0),
    "enrolments": (20, 3600.0),
}
UNLIMITED = "unlimited"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    scope: str
    limit: int
    remaining: int
    reset_in: int  # seconds until the window ends

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Scope": self.scope,
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_in),
        }


def _parse(value: tuple[int, float] | Mapping[str, Any]) -> tuple[int, float]:
    """(limit, period seconds), checked as the SendGrid emulator checks its limits."""
    parsed = RateLimit.parse(value)
    return parsed.limit, parsed.period


class TierLimiter:
    """Fixed windows aligned to the period, one per tier, shared by the account's API users."""

    def __init__(self, limits: Mapping[str, tuple[int, float] | Mapping[str, Any]] | None = None, *,
                 clock: Callable[[], float]) -> None:
        self.limits: dict[str, tuple[int, float]] = dict(DEFAULT_TIER_LIMITS)
        for tier, value in (limits or {}).items():
            self.configure(tier, value)
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def configure(self, tier: str, value: tuple[int, float] | Mapping[str, Any]) -> None:
        if tier not in DEFAULT_TIER_LIMITS:
            raise ValueError(f"unknown tier {tier!r}: one of {', '.join(DEFAULT_TIER_LIMITS)}")
        self.limits[tier] = _parse(value)
        if hasattr(self, "_windows"):
            self._windows.pop(tier, None)

    def reset(self) -> None:
        self._windows.clear()

    def _window(self, tier: str) -> tuple[float, int, int, float]:
        limit, period = self.limits[tier]
        now = self._clock()
        start = math.floor(now / period) * period
        window_start, used = self._windows.get(tier, (start, 0))
        return start, used if window_start == start else 0, limit, start + period - now

    def hit(self, tier: str) -> Decision | None:
        """Count one call; None for unlimited calls (no headers). A refused call does not count."""
        if tier == UNLIMITED:
            return None
        start, used, limit, left = self._window(tier)
        reset_in = max(1, math.ceil(left))
        if used >= limit:
            self._windows[tier] = (start, used)
            return Decision(False, tier, limit, 0, reset_in)
        self._windows[tier] = (start, used + 1)
        return Decision(True, tier, limit, limit - used - 1, reset_in)

    def peek(self, tier: str) -> Decision:
        t = tier if tier != UNLIMITED else "high"
        _start, used, limit, left = self._window(t)
        return Decision(used < limit, t, limit, max(0, limit - used), max(1, math.ceil(left)))

    def describe(self) -> dict[str, Any]:
        return {tier: {"limit": limit, "period": period} for tier, (limit, period) in self.limits.items()}
