"""Small helpers shared by the SendGrid emulator modules: error shapes, JSON, e-mail syntax, time."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response

# Deliberately simple: SendGrid's exact address grammar is not published. This rejects what a
# bridge bug typically produces (no "@", spaces, no dot in the domain, empty parts).
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True)
class FieldError:
    """One entry of SendGrid's ``{"errors": [{"field": ..., "message": ...}]}`` body."""

    field: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message}


class ApiError(Exception):
    """Raised by a handler to answer with SendGrid's error shape."""

    def __init__(self, status: int, errors: FieldError | Iterable[FieldError]) -> None:
        self.status = status
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        super().__init__(f"{status}: {[e.message for e in self.errors]}")


def not_found(message: str = "resource not found", field: str | None = None) -> ApiError:
    return ApiError(404, FieldError(field, message))


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, FieldError(field, message))


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=dict(headers or {}), media_type="application/json")


def errors_response(status: int, errors: Iterable[FieldError], headers: Mapping[str, str] | None = None) -> Response:
    return json_response({"errors": [e.as_json() for e in errors]}, status, headers)


def empty_response(status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(b"", status_code=status, headers=dict(headers or {}))


def is_valid_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_EMAIL_LENGTH and _EMAIL.fullmatch(value) is not None


def iso(ts: float) -> str:
    """SendGrid's marketing timestamps: ISO 8601, UTC, ``Z`` suffix, whole seconds."""
    if ts < 0:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    # What datetime.fromtimestamp(ts).isoformat(timespec="seconds") gives (it rounds to the
    # microsecond first), at a third of the cost: exports format two per contact, millions.
    fraction, whole = math.modf(ts)
    if round(fraction * 1e6) >= 1_000_000:
        whole += 1
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(whole))


def csv_ids(value: str) -> list[str]:
    """``a, b,,c`` -> ``["a", "b", "c"]`` (comma-separated id query parameters)."""
    return [part.strip() for part in value.split(",") if part.strip()]
