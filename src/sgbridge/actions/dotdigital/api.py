"""Dotdigital's API as Segment's Dotdigital destination uses it: Basic auth (API user and
password), the account's region host (``api_host``: r1, r2 or r3), its data fields (read once and
kept: Segment reads them on every event that maps data fields), and its two error shapes (v2
``{"message"}``, v3 ``{"errorCode", "description", "details"}``). The rest (concurrency, rate-limit
pauses, the request log, Transient on 408/429/5xx) is ``actions.http``."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

import httpx

from sgbridge.actions.http import ApiClient, Rejection, response_json
from sgbridge.destinations.classify import short_body

REGIONS = {"r1": "https://r1-api.dotdigital.com", "r2": "https://r2-api.dotdigital.com",
           "r3": "https://r3-api.dotdigital.com"}
DEFAULT_HOST = REGIONS["r1"]


@dataclass
class DotdigitalApi(ApiClient):
    authorization: str = ""
    endpoint: str = DEFAULT_HOST
    _data_fields: list[dict[str, Any]] | None = field(default=None, init=False)
    _reading: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)  # one read for every contact
    _lists: dict[str, int] = field(default_factory=dict, init=False)
    _finding: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @classmethod
    def with_login(cls, client: httpx.AsyncClient, username: str, password: str, endpoint: str = DEFAULT_HOST,
                   **options: Any) -> DotdigitalApi:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        return cls(client, f"Basic {token}", endpoint, **options)

    async def data_fields(self) -> list[dict[str, Any]]:
        """``[{name, type, visibility, defaultValue}]``, read once (``GET /v2/data-fields/``)."""
        async with self._reading:
            if self._data_fields is None:
                response = await self.call("GET", "/v2/data-fields/")
                if response.status_code >= 300:
                    raise rejection(response, "data fields")
                found = response_json(response)
                self._data_fields = [f for f in found if isinstance(f, dict) and "name" in f] \
                    if isinstance(found, list) else []
            return self._data_fields


async def list_named(api: DotdigitalApi, name: str, visibility: str = "Private") -> int:
    """The id of the list (address book) of that name, made if there is none; kept per process
    (Segment's ``createAudience``: ``GET /v2/address-books?select=200&skip=n``, then ``POST``)."""
    async with api._finding:
        if name in api._lists:
            return api._lists[name]
        skip = 0
        while True:
            response = await api.call("GET", "/v2/address-books", params={"select": 200, "skip": skip})
            if response.status_code >= 300:
                raise rejection(response, "find the audience's list")
            page = response_json(response)
            page = page if isinstance(page, list) else []
            found = next((b for b in page if isinstance(b, dict) and b.get("name") == name), None)
            if found is not None:
                api._lists[name] = int(found["id"])
                return api._lists[name]
            if len(page) < 200:
                break
            skip += 200
        response = await api.call("POST", "/v2/address-books", body={"name": name, "visibility": visibility})
        if response.status_code >= 300:
            raise rejection(response, "create the audience's list")
        created = response_json(response)
        api._lists[name] = int(created["id"]) if isinstance(created, dict) else 0
        return api._lists[name]


def error_text(response: httpx.Response) -> str:
    """Dotdigital's reason: v2's ``message``, v3's ``description`` and its details."""
    data = response_json(response)
    if isinstance(data, dict):
        if isinstance(data.get("description"), str):
            details = [str(d.get("description") or d) if isinstance(d, dict) else str(d)
                       for d in data.get("details") or []]
            return "; ".join([data["description"], *details])
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return short_body(response)


def rejection(response: httpx.Response, what: str) -> Rejection:
    return Rejection(response.status_code, f"{what}: HTTP {response.status_code}: {error_text(response)}")
