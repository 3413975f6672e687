"""What every destination's API client shares: auth, bounded concurrency, limits, a request log.

Every request goes through ``ApiClient.call``. It holds a per-destination semaphore (bounded
concurrency), waits out a rate-limit window the API announced (``X-RateLimit-Remaining: 0``
until ``X-RateLimit-Reset``), and reports each request to ``on_request`` (the ``actions test``
printout and the delivery attempt log both come from there). Transport errors, 408/429 and
5xx raise ``Transient`` (with the wait the server asked for) so callers can retry the
affected events only; other statuses are returned for the caller to interpret. Each API
(``actions/sendgrid/api.py``, ``actions/dotdigital/api.py``) adds its auth and its error shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from sgbridge.destinations.classify import RETRYABLE_STATUS, short_body, wait_hint

USER_AGENT = "sgbridge"


class Transient(Exception):
    """Worth trying again later. ``sent`` is False when the request surely never reached the API."""

    def __init__(self, reason: str, after: float | None = None, status: int | None = None, sent: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.after = after
        self.status = status
        self.sent = sent


@dataclass
class RequestRecord:
    """One request and its answer, for ``actions test`` and the attempt log."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    status: int | None
    response_body: bytes
    duration_ms: float
    owners: tuple[int, ...] = ()  # indexes (or journal seqs) of the events the request served
    error: str | None = None
    started_at: float = 0.0  # wall clock, for the attempt log

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"method": self.method, "url": self.url, "headers": self.headers}
        if self.body is not None:
            data["body_raw"] = self.body.decode("utf-8", "replace")
            with contextlib.suppress(orjson.JSONDecodeError):
                data["json"] = orjson.loads(self.body)
        data["response"] = {"status": self.status, "body": self.response_body.decode("utf-8", "replace")[:2000]}
        if self.error:
            data["response"]["error"] = self.error
        return data


RequestHook = Callable[[RequestRecord], Awaitable[None] | None]
_HIDDEN = frozenset({"authorization"})


@dataclass
class ApiClient:
    """One destination's API: ``authorization`` is the whole Authorization header's value."""

    client: httpx.AsyncClient
    authorization: str
    endpoint: str
    max_concurrency: int = 4
    timeout_seconds: float = 30.0
    on_request: RequestHook | None = None
    _gate: asyncio.Semaphore = field(init=False)
    _paused_until: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.endpoint = self.endpoint.rstrip("/")
        self._gate = asyncio.Semaphore(self.max_concurrency)

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.endpoint}{path}"

    async def call(self, method: str, path: str, *, body: Any = None, owners: Sequence[int] = (),
                   content: bytes | None = None, params: dict[str, Any] | None = None,
                   content_type: str = "application/json") -> httpx.Response:
        url = self.url(path)
        if params:
            url = str(httpx.URL(url, params=params))
        payload = content if content is not None else (None if body is None else orjson.dumps(body))
        headers = {"Authorization": self.authorization, "Accept": "application/json", "User-Agent": USER_AGENT}
        if payload is not None:
            headers["Content-Type"] = content_type
        async with self._gate:
            pause = self._paused_until - time.time()
            if pause > 0:
                await asyncio.sleep(pause)
            started = time.perf_counter()
            try:
                response = await self.client.request(method, url, content=payload, headers=headers,
                                                     timeout=self.timeout_seconds)
            except httpx.HTTPError as exc:
                # A connect error means the request never left; anything later may have been applied.
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                await self._report(method, url, headers, payload, None, b"", started, owners, reason)
                raise Transient(reason, sent=sent) from exc
            await self._report(method, url, headers, payload, response.status_code, response.content, started,
                               owners, None)
        self._note_limits(response)
        if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
            raise Transient(f"HTTP {response.status_code}: {short_body(response)}", wait_hint(response.headers),
                            response.status_code)
        return response

    def _note_limits(self, response: httpx.Response) -> None:
        remaining = response.headers.get("x-ratelimit-remaining")
        if remaining == "0" or response.status_code == 429:
            wait = wait_hint(response.headers)
            if wait:
                self._paused_until = max(self._paused_until, time.time() + min(wait, 300.0))

    async def _report(self, method: str, url: str, headers: dict[str, str], body: bytes | None, status: int | None,
                      response_body: bytes, started: float, owners: Sequence[int], error: str | None) -> None:
        if self.on_request is None:
            return
        shown = {k: v for k, v in headers.items() if k.lower() not in _HIDDEN}
        elapsed = time.perf_counter() - started
        record = RequestRecord(method, url, shown, body, status, response_body, elapsed * 1000, tuple(owners), error,
                               time.time() - elapsed)
        result = self.on_request(record)
        if result is not None:
            await result


class Rejection(Exception):
    """The API refused for good (4xx other than 408/429): the affected events are rejected."""

    def __init__(self, status: int | None, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        return None


def response_json(response: httpx.Response) -> Any:
    return _json(response)
