"""SendGrid's per-endpoint rate limits, as the client sees them.

SendGrid puts ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (epoch
seconds) on every response and answers ``429 {"errors":[{"field":null,"message":"too many
requests"}]}`` past the limit; the limits are per endpoint and unpublished apart from mail
send's 10,000 requests per second (sendgrid-api.md §3.9). The emulator uses fixed windows
aligned to the period, so ``Reset`` is the same for every request of a window, as in SendGrid's
documented examples, and a bridge's back-off can be tested to the second with an injected clock.

Buckets are keyed ``"METHOD /path/template"`` (e.g. ``"PUT /v3/marketing/contacts"``) and are
account-wide: all API keys of the emulated account share them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_LIMIT_PER_MINUTE = 600  # illustrative: SendGrid publishes no per-endpoint numbers


@dataclass(frozen=True)
class RateLimit:
    limit: int
    period: float  # seconds

    @classmethod
    def parse(cls, value: RateLimit | tuple[int, float] | Mapping[str, Any]) -> RateLimit:
        if isinstance(value, RateLimit):
            return value
        if isinstance(value, Mapping):
            limit, period = value.get("limit"), value.get("period", 60)
        else:
            limit, period = value
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be a positive integer")
        if isinstance(period, bool) or not isinstance(period, int | float) or not 0 < period <= 86400:
            raise ValueError("period must be a number of seconds in (0, 86400]")
        return cls(limit, float(period))


DEFAULT_RATE_LIMITS: Mapping[str, RateLimit] = {
    "POST /v3/mail/send": RateLimit(10_000, 1.0),  # "up to 10,000 requests per second" (v3 mail FAQ)
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds at which the window ends

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    def __init__(
        self,
        limits: Mapping[str, RateLimit | tuple[int, float]] | None = None,
        *,
        default: RateLimit | tuple[int, float] = (DEFAULT_LIMIT_PER_MINUTE, 60.0),
        clock: Callable[[], float],
    ) -> None:
        self.default = RateLimit.parse(default)
        self.limits: dict[str, RateLimit] = dict(DEFAULT_RATE_LIMITS)
        self.limits.update({bucket: RateLimit.parse(v) for bucket, v in (limits or {}).items()})
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # bucket -> (window start, requests in it)

    def now(self) -> float:
        return self._clock()

    def limit_for(self, bucket: str) -> RateLimit:
        return self.limits.get(bucket, self.default)

    def configure(self, bucket: str, value: RateLimit | tuple[int, float] | Mapping[str, Any]) -> None:
        self.limits[bucket] = RateLimit.parse(value)
        self._windows.pop(bucket, None)

    def reset(self) -> None:
        self._windows.clear()

    def hit(self, bucket: str) -> Decision:
        """Count one request against ``bucket``; a refused request does not count."""
        rule = self.limit_for(bucket)
        now = self._clock()
        start = math.floor(now / rule.period) * rule.period
        window_start, used = self._windows.get(bucket, (start, 0))
        if window_start != start:
            used = 0
        reset = math.ceil(start + rule.period)
        if used >= rule.limit:
            self._windows[bucket] = (start, used)
            return Decision(False, rule.limit, 0, reset)
        used += 1
        self._windows[bucket] = (start, used)
        return Decision(True, rule.limit, rule.limit - used, reset)

    def peek(self, bucket: str) -> Decision:
        """The headers a request would see now, without counting it (used by faults)."""
        rule = self.limit_for(bucket)
        start = math.floor(self._clock() / rule.period) * rule.period
        window_start, used = self._windows.get(bucket, (start, 0))
        used = used if window_start == start else 0
        return Decision(used < rule.limit, rule.limit, max(0, rule.limit - used), math.ceil(start + rule.period))

    def describe(self) -> dict[str, Any]:
        return {
            "default": {"limit": self.default.limit, "period": self.default.period},
            "limits": {b: {"limit": r.limit, "period": r.period} for b, r in sorted(self.limits.items())},
        }
