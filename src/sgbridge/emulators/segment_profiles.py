"""Segment's Profile API, emulated: the traits of the identify calls the emulator accepted.

``GET /v1/spaces/<space>/collections/users/profiles/<id_type>:<id_value>/traits`` as Segment
documents it (``reference/segment-api.md`` §4): HTTP Basic with the space's access token as the
user name; ``user_id``, ``anonymous_id`` and ``email`` identities (emails lower-cased), all the
identities of one identify call naming one profile; ``limit`` (default 10, at most 200) and
``include``; ``{"traits": {...}, "cursor": {"url", "has_more", "next", "limit"}}``; errors
``{"error": {"code", "message"}}`` with 400, 401, 404 and 429 (100 requests per second per space,
``Retry-After``); a ``Request-Id`` header. Faults of the emulator apply to these paths too.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response

ID_TYPES = ("user_id", "anonymous_id", "email")
RATE_PER_SECOND = 100
MAX_LIMIT = 200


class ProfileStore:
    """Profiles by identity: one dict of traits per profile, shared by all its identities."""

    def __init__(self) -> None:
        self._by_identity: dict[str, dict[str, Any]] = {}
        self.lookups = 0

    def apply_identify(self, message: dict[str, Any]) -> None:
        identities = []
        for id_type, field in (("user_id", "userId"), ("anonymous_id", "anonymousId")):
            value = message.get(field)
            if isinstance(value, str | int) and str(value):
                identities.append(f"{id_type}:{value}")
        traits = message.get("traits") if isinstance(message.get("traits"), dict) else {}
        email = traits.get("email") if isinstance(traits, dict) else None
        if isinstance(email, str) and email.strip():
            identities.append(f"email:{email.strip().lower()}")
        if not identities:
            return
        profile = next((self._by_identity[i] for i in identities if i in self._by_identity), None)
        if profile is None:
            profile = {}
        profile.update(traits or {})
        for identity in identities:
            self._by_identity[identity] = profile

    def traits(self, identity: str) -> dict[str, Any] | None:
        return self._by_identity.get(identity)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": {"code": code, "message": message}}), status, media_type="application/json",
                    headers={"Request-Id": uuid.uuid4().hex, **(headers or {})})


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user = decoded.split(":", 1)[0]
    return user or None


class ProfileApi:
    """The endpoint; ``tokens``: the access token of each space (None: any non-empty token, any space).
    ``store``: the emulator's current profiles (a reset of the emulator makes a new store)."""

    def __init__(self, store: Callable[[], ProfileStore], tokens: dict[str, str] | None = None) -> None:
        self.store = store
        self.tokens = tokens
        self._second = 0
        self._count: dict[str, int] = {}

    def _rate_limited(self, space: str) -> bool:
        now = int(time.monotonic())
        if now != self._second:
            self._second, self._count = now, {}
        self._count[space] = self._count.get(space, 0) + 1
        return self._count[space] > RATE_PER_SECOND

    async def traits(self, request: Request) -> Response:
        space = request.path_params["space"]
        token = _token(request)
        if token is None or (self.tokens is not None and self.tokens.get(space) != token):
            return _error(401, "authentication_error", "Invalid access token")
        if self._rate_limited(space):
            return _error(429, "rate_limit_error", "Rate limit exceeded: 100 requests per second per space",
                          {"Retry-After": "1"})
        identity = unquote(request.path_params["identity"])
        id_type, _, value = identity.partition(":")
        if id_type not in ID_TYPES or not value:
            return _error(400, "validation_error", f"invalid external id {identity!r}: use user_id:, anonymous_id: "
                          "or email:")
        try:
            limit = int(request.query_params.get("limit", "10"))
        except ValueError:
            return _error(400, "validation_error", "limit must be an integer")
        if not 1 <= limit <= MAX_LIMIT:
            return _error(400, "validation_error", f"limit must be between 1 and {MAX_LIMIT}")
        store = self.store()
        store.lookups += 1
        traits = store.traits(f"{id_type}:{value.lower() if id_type == 'email' else value}")
        if traits is None:
            return _error(404, "invalid_request_error", "Resource not found")
        include = [n for n in request.query_params.get("include", "").split(",") if n]
        names = sorted(n for n in traits if not include or n in include)
        after = request.query_params.get("next", "")
        names = [n for n in names if n > after] if after else names
        page, more = names[:limit], len(names) > limit
        body = {"traits": {n: traits[n] for n in page},
                "cursor": {"url": str(request.url.path), "has_more": more, "next": page[-1] if more else "",
                           "limit": limit}}
        return Response(orjson.dumps(body), media_type="application/json", headers={"Request-Id": uuid.uuid4().hex})
