"""On-demand failures for the HTTP emulators.

A bridge is only as good as its behaviour when the other side misbehaves, so the emulators
let a test or a demo switch failures on and off at run time (``POST /_emulator/faults``)
instead of needing a separate "broken" server. The injector is framework-neutral apart from
the two Starlette responses at the bottom, so every emulator can share it.

A fault rule, as JSON::

    {"status": 429, "count": 5, "retry_after": 2}      # rate limited, with Retry-After
    {"status": 503, "count": 3}                        # plain server errors
    {"delay": 1.5, "count": 2}                         # slow responses, then normal handling
    {"drop": true, "count": 1}                         # connection dropped after the request is read
    {"status": 500, "probability": 0.2, "duration": 10}  # random failures for a period

Optional keys: ``path`` (only requests whose path starts with it), ``process`` (handle the
request normally *first* and then fail the response: the "ack lost" case that exercises a
client's idempotency). Without ``count`` and ``duration`` a rule fires once.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

_ALLOWED_KEYS = frozenset(
    {"status", "count", "retry_after", "delay", "drop", "probability", "duration", "path", "process"}
)


class FaultSpecError(ValueError):
    """The fault description sent to ``POST /_emulator/faults`` is not valid."""


class EmulatedConnectionDrop(httpx.RemoteProtocolError):
    """Raised inside the ASGI app to abort a response half-way.

    Under uvicorn the server closes the socket after the response head, so a client sees a
    transport error. It subclasses httpx's own transport error because under
    ``httpx.ASGITransport`` the exception reaches the caller unchanged: in-process tests then
    observe the same exception class a real network drop would produce.
    """


@dataclass(slots=True)
class FaultRule:
    id: int
    status: int | None = None
    delay: float = 0.0
    drop: bool = False
    retry_after: float | None = None
    remaining: int | None = None  # None: unlimited (bounded by expires_at)
    probability: float = 1.0
    expires_at: float | None = None  # monotonic deadline
    path: str | None = None
    process: bool = False
    fired: int = 0

    @property
    def fails_response(self) -> bool:
        """False for delay-only rules: those slow a request down and then let it through."""
        return self.drop or self.status is not None

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "delay": self.delay,
            "drop": self.drop,
            "retry_after": self.retry_after,
            "remaining": self.remaining,
            "probability": self.probability,
            "expires_in": None if self.expires_at is None else max(0.0, self.expires_at - now),
            "path": self.path,
            "process": self.process,
            "fired": self.fired,
        }


def _number(spec: Mapping[str, Any], key: str, *, minimum: float, maximum: float) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    # bool is an int subclass; {"delay": true} is a client bug worth reporting.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FaultSpecError(f"{key} must be a number")
    if not minimum <= value <= maximum:
        raise FaultSpecError(f"{key} must be between {minimum} and {maximum}")
    return float(value)


class FaultInjector:
    """An ordered list of fault rules; the first rule that fires decides a request's fate."""

    def __init__(self, *, seed: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)
        self._clock = clock
        self._next_id = 1
        self.injected = 0  # faults actually applied, across clears

    def add(self, spec: Mapping[str, Any]) -> FaultRule:
        unknown = set(spec) - _ALLOWED_KEYS
        if unknown:
            raise FaultSpecError(f"unknown fault keys: {sorted(unknown)}")
        status = _number(spec, "status", minimum=400, maximum=599)
        if status is not None and status != int(status):
            raise FaultSpecError("status must be an integer")
        drop = spec.get("drop", False)
        process = spec.get("process", False)
        if not isinstance(drop, bool) or not isinstance(process, bool):
            raise FaultSpecError("drop and process must be booleans")
        delay = _number(spec, "delay", minimum=0, maximum=3600) or 0.0
        if status is None and not drop and delay == 0.0:
            raise FaultSpecError("a fault needs status, drop or delay")
        if drop and status is not None:
            raise FaultSpecError("drop and status are exclusive")
        count = _number(spec, "count", minimum=1, maximum=10**9)
        if count is not None and count != int(count):
            raise FaultSpecError("count must be an integer")
        duration = _number(spec, "duration", minimum=0, maximum=86400)
        probability = _number(spec, "probability", minimum=0, maximum=1)
        path = spec.get("path")
        if path is not None and not isinstance(path, str):
            raise FaultSpecError("path must be a string")
        if count is None and duration is None:
            count = 1  # an unbounded fault by accident would wedge a test run
        rule = FaultRule(
            id=self._next_id,
            status=None if status is None else int(status),
            delay=delay,
            drop=drop,
            retry_after=_number(spec, "retry_after", minimum=0, maximum=86400),
            remaining=None if count is None else int(count),
            probability=1.0 if probability is None else probability,
            expires_at=None if duration is None else self._clock() + duration,
            path=path,
            process=process,
        )
        self._next_id += 1
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        self._rules.clear()

    def _prune(self, now: float) -> None:
        self._rules = [
            r
            for r in self._rules
            if (r.remaining is None or r.remaining > 0) and (r.expires_at is None or now < r.expires_at)
        ]

    def describe(self) -> dict[str, Any]:
        now = self._clock()
        self._prune(now)
        return {"faults": [r.describe(now) for r in self._rules], "injected": self.injected}

    def pick(self, path: str) -> FaultRule | None:
        """Return the rule to apply to this request (consuming one use of it), or None."""
        now = self._clock()
        self._prune(now)
        for rule in self._rules:
            if rule.path is not None and not path.startswith(rule.path):
                continue
            # A probabilistic rule that does not fire is not consumed; later rules still get a chance.
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            rule.fired += 1
            self.injected += 1
            return rule
        return None


class DropConnectionResponse(Response):
    """Starts a response and then aborts it, so the client never gets a complete answer.

    ASGI has no "close the socket" message; raising after ``http.response.start`` is the one
    way to make uvicorn close the connection instead of answering 500. The head announces a
    body that never comes and a non-2xx status, so even a client that looks at the status
    before reading the body cannot mistake it for success.
    """

    def __init__(self) -> None:
        super().__init__(status_code=502)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 502,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        raise EmulatedConnectionDrop("emulated connection drop (fault injection)")


def fault_response(rule: FaultRule) -> Response:
    """The HTTP answer for a failing rule (callers handle delay-only rules themselves)."""
    if rule.drop:
        return DropConnectionResponse()
    status = rule.status if rule.status is not None else 500
    headers: dict[str, str] = {}
    if status == 429:
        # Segment documents both headers as "seconds after which you can retry".
        wait = rule.retry_after if rule.retry_after is not None else 1.0
        seconds = str(math.ceil(wait))
        headers = {"Retry-After": seconds, "X-RateLimit-Reset": seconds}
        message = "Too Many Requests"
    else:
        if rule.retry_after is not None:
            headers = {"Retry-After": str(math.ceil(rule.retry_after))}
        message = f"emulated failure (fault injection, status {status})"
    return Response(
        orjson.dumps({"error": message}), status_code=status, headers=headers, media_type="application/json"
    )


async def faults_control(faults: FaultInjector, method: str, body: bytes) -> Response:
    """``GET|POST|DELETE /_emulator/faults`` of every emulator: list the rules, add one or a list
    of them, or clear them; the rules in force as the answer."""
    if method == "DELETE":
        faults.clear()
    elif method == "POST":
        try:
            spec = orjson.loads(body)
            for one in spec if isinstance(spec, list) else [spec]:
                if not isinstance(one, dict):
                    raise FaultSpecError("a fault is a JSON object (or a list of them)")
                faults.add(one)
        except orjson.JSONDecodeError:
            return Response(orjson.dumps({"error": "invalid JSON"}), status_code=400, media_type="application/json")
        except FaultSpecError as exc:
            return Response(orjson.dumps({"error": str(exc)}), status_code=400, media_type="application/json")
    return Response(orjson.dumps(faults.describe()), media_type="application/json")
