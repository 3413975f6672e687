"""Segment's Profile API, for lookup steps when a space and its access token are configured.

``GET /v1/spaces/<space>/collections/users/profiles/<id_type>:<id_value>/traits`` (HTTP Basic, the
token as user name; ``reference/segment-api.md`` §4), paged 200 traits at a time. 404 means no
profile; 429, 5xx and network errors are retried a few times, honouring ``Retry-After``, then
raised as ``ProfileApiUnavailable`` (the run tries again later); 400, 401 and 403 raise
``ProfileApiRefused`` (the run fails with the reason). Profiles are cached for
``profile_cache_seconds``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

import httpx

from sgbridge.destinations.classify import wait_hint
from sgbridge.workflows.settings import WorkflowEngineSettings

HOSTS = {"us": "https://profiles.segment.com", "eu": "https://profiles.euw1.segment.com"}
ID_TYPES = {"userId": "user_id", "anonymousId": "anonymous_id", "email": "email"}
ATTEMPTS = 4
CACHE_ENTRIES = 10_000


class ProfileApiUnavailable(Exception):
    """The Profile API did not answer usefully (rate limits, 5xx, network): try again later."""


class ProfileApiRefused(Exception):
    """The Profile API refused the request (bad token, no access, a bad id): retrying will not help."""


def identity_of(run_key: str) -> str | None:
    """A run key (``userId:u-1``) as the Profile API's external id (``user_id:u-1``); None for keys
    it has no id type for (a dotted path)."""
    name, _, value = run_key.partition(":")
    id_type = ID_TYPES.get(name)
    if id_type is None or not value:
        return None
    return f"{id_type}:{value.lower() if id_type == 'email' else value}"


class ProfileApi:
    def __init__(self, settings: WorkflowEngineSettings, client: httpx.AsyncClient) -> None:
        assert settings.profile_api_space and settings.profile_api_token
        self.client = client
        base = (settings.profile_api_endpoint or HOSTS[settings.profile_api_region]).rstrip("/")
        self.url = f"{base}/v1/spaces/{quote(settings.profile_api_space, safe='')}/collections/users/profiles"
        token = settings.profile_api_token.get_secret_value()
        self._auth = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
        self.cache_seconds = settings.profile_cache_seconds
        self._cache: OrderedDict[str, tuple[float, dict[str, Any] | None]] = OrderedDict()

    @staticmethod
    def configured(settings: WorkflowEngineSettings) -> bool:
        return bool(settings.profile_api_space and settings.profile_api_token)

    async def traits(self, run_key: str) -> dict[str, Any] | None:
        """The profile's traits; None if Segment has no such profile (or no id type fits the key)."""
        identity = identity_of(run_key)
        if identity is None:
            return None
        cached = self._cache.get(identity)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        traits: dict[str, Any] | None = {}
        after = ""
        while True:
            page = await self._page(identity, after)
            if page is None:
                traits = None
                break
            assert traits is not None
            traits.update(page.get("traits") or {})
            cursor = page.get("cursor") or {}
            if not cursor.get("has_more") or not cursor.get("next"):
                break
            after = str(cursor["next"])
        self._cache[identity] = (time.monotonic() + self.cache_seconds, traits)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return traits

    async def _page(self, identity: str, after: str) -> dict[str, Any] | None:
        params = {"limit": "200", **({"next": after} if after else {})}
        url = f"{self.url}/{quote(identity, safe=':@')}/traits"
        problem = ""
        for attempt in range(ATTEMPTS):
            wait = 0.25 * 2 ** attempt
            try:
                response = await self.client.get(url, params=params, headers={"Authorization": self._auth},
                                                 timeout=10.0)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    body = response.json()
                    return body if isinstance(body, dict) else {}
                if response.status_code == 404:
                    return None
                problem = f"{response.status_code} {_message(response)}"
                if response.status_code not in (408, 429) and response.status_code < 500:
                    raise ProfileApiRefused(f"Segment's Profile API answered {problem}")
                wait = max(wait, wait_hint(response.headers) or 0.0)
            if attempt + 1 < ATTEMPTS:
                await asyncio.sleep(min(wait, 10.0))
        raise ProfileApiUnavailable(f"Segment's Profile API: {problem}")


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except Exception:
        return response.text[:200]
