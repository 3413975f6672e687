"""The SendGrid v3 API as the object sync reads it: blocking, patient, and clear about refusals.

Syncs run in a worker thread and hand their pages to dlt, which pulls from plain generators, so
this client is synchronous (httpx, like the rest of sgbridge). It waits out rate limits the way
SendGrid announces them (``X-RateLimit-Remaining: 0`` until ``X-RateLimit-Reset``, and 429),
retries 5xx, 408 and network errors with backoff, and turns the refusals a user must act on into
their own exceptions: 401 is ``InvalidCredentials`` (the whole sync stops), 403 is
``AccessDenied`` (that collection reports zero data synced: a key without the scope, or an
account without Marketing Campaigns).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from sgbridge.actions.sendgrid.api import api_errors
from sgbridge.destinations.classify import RETRYABLE_STATUS, short_body, wait_hint

HOSTS = {"us": "https://api.sendgrid.com", "eu": "https://api.eu.sendgrid.com"}
USER_AGENT = "sgbridge-sync"


class SyncApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidCredentials(SyncApiError):
    """401: the key is wrong, revoked, or pasted with stray characters."""


class AccessDenied(SyncApiError):
    """403: the key lacks the scope, or the account lacks the feature (Marketing Campaigns)."""


class Cancelled(Exception):
    """The process is stopping: the sync ends early and the run is recorded as interrupted."""


def _errors_text(response: httpx.Response) -> str:
    """SendGrid's ``{"errors": [{"message"}]}``, or the start of the body."""
    return "; ".join(str(e.get("message")) for e in api_errors(response)) or short_body(response)


class SyncApi:
    def __init__(self, api_key: str, endpoint: str, *, timeout_seconds: float = 60.0, max_attempts: int = 8,
                 max_wait_seconds: float = 300.0, cancel: threading.Event | None = None,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.max_attempts = max_attempts
        self.max_wait = max_wait_seconds
        self.cancel = cancel or threading.Event()
        self._sleep = sleep
        self._paused_until = 0.0
        self.requests = 0
        self.client = httpx.Client(
            transport=transport, timeout=timeout_seconds, follow_redirects=True,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._secret = api_key

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SyncApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.endpoint}{path}"

    def wait(self, seconds: float) -> None:
        """Sleep, but wake up (and stop) when the process is shutting down."""
        if self._sleep is not None:
            self._sleep(seconds)
        elif self.cancel.wait(seconds):
            raise Cancelled("stopping")
        if self.cancel.is_set():
            raise Cancelled("stopping")

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._json(self.request("GET", path, params=params))

    def post(self, path: str, body: Any) -> Any:
        return self._json(self.request("POST", path, json=body))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.url(path)
        for attempt in range(1, self.max_attempts + 1):
            if self.cancel.is_set():
                raise Cancelled("stopping")
            pause = self._paused_until - time.time()
            if pause > 0:
                self.wait(pause)
            self.requests += 1
            try:
                response = self.client.request(method, url, headers=self._auth, **kwargs)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self._retry_or_raise(attempt, f"{method} {url}: {problem}", None)
                continue
            self._note_limits(response)
            status = response.status_code
            if status < 400:
                return response
            reason = f"{method} {url}: HTTP {status}: {_errors_text(response)}"
            if status == 401:
                raise InvalidCredentials(reason, status)
            if status == 403:
                raise AccessDenied(reason, status)
            if status in RETRYABLE_STATUS or status >= 500:
                self._retry_or_raise(attempt, reason, wait_hint(response.headers), status)
                continue
            raise SyncApiError(reason, status)
        raise AssertionError("unreachable")  # _retry_or_raise raises on the last attempt

    def download(self, url: str, target: Path) -> int:
        """Stream a file (a pre-signed export link: no Authorization header) to disk; returns bytes."""
        for attempt in range(1, self.max_attempts + 1):
            self.requests += 1
            try:
                with self.client.stream("GET", url) as response:
                    if response.status_code >= 400:
                        response.read()
                        reason = f"download {url.split('?')[0]}: HTTP {response.status_code}: {short_body(response)}"
                        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
                            self._retry_or_raise(attempt, reason, wait_hint(response.headers),
                                                 response.status_code)
                            continue
                        raise SyncApiError(reason, response.status_code)
                    size = 0
                    with target.open("wb") as out:
                        for chunk in response.iter_bytes(1 << 20):
                            if self.cancel.is_set():
                                raise Cancelled("stopping")
                            out.write(chunk)
                            size += len(chunk)
                    return size
            except httpx.HTTPError as exc:
                self._retry_or_raise(attempt, f"download {url.split('?')[0]}: {type(exc).__name__}: {exc}", None)
        raise AssertionError("unreachable")

    def _note_limits(self, response: httpx.Response) -> None:
        if response.headers.get("x-ratelimit-remaining") == "0" or response.status_code == 429:
            wait = wait_hint(response.headers)
            if wait:
                self._paused_until = max(self._paused_until, time.time() + min(wait, self.max_wait))

    def _redact(self, text: str) -> str:
        """Transport errors may quote the request's headers: never let the key reach a message."""
        return text.replace(self._secret, "***") if self._secret else text

    def _retry_or_raise(self, attempt: int, reason: str, hint: float | None, status: int | None = None) -> None:
        reason = self._redact(reason)
        if attempt >= self.max_attempts:
            raise SyncApiError(f"{reason} (gave up after {attempt} attempts)", status)
        backoff = random.uniform(0.5, 1.0) * min(30.0, 0.5 * 2 ** (attempt - 1))
        self.wait(min(self.max_wait, max(backoff, hint or 0.0)))

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise SyncApiError(f"{response.request.method} {response.request.url}: not JSON: "
                               f"{short_body(response)}", response.status_code) from exc
