"""Turn an HTTP response (or a transport error) into an outcome, the same way for every API.

2xx → Delivered; 408, 429, 5xx and network errors → Retry (honouring ``Retry-After`` or
``X-RateLimit-Reset``); every other status → Rejected at once, with the API's reason.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import httpx

from sgbridge.outcomes import Delivered, Outcome, Rejected, Retry

RETRYABLE_STATUS = frozenset({408, 425, 429})


def wait_hint(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from ``Retry-After`` or ``X-RateLimit-Reset``."""
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            seconds = float(reset)
        except ValueError:
            return None
        # Segment sends seconds to wait; SendGrid sends the Unix time of the reset.
        return max(0.0, seconds - now) if seconds > 1e9 else max(0.0, seconds)
    return None


def short_body(response: httpx.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("…" if len(text) > limit else "")


def classify_response(response: httpx.Response) -> Outcome:
    code = response.status_code
    if 200 <= code < 300:
        return Delivered(code, response=short_body(response, 500))
    reason = f"HTTP {code}: {short_body(response)}"
    if code in RETRYABLE_STATUS or code >= 500:
        return Retry(reason, wait_hint(response.headers), code)
    return Rejected(reason, code)


def classify_error(error: Exception) -> Outcome:
    """Transport errors are worth another try; the receiver dedupes on our ids."""
    return Retry(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
