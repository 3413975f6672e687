"""The SendGrid v3 API as the actions use it: a Bearer key, its field definitions (cached), its
``{"errors": [...]}`` answers. The rest (concurrency, limits, the request log) is ``actions.http``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from sgbridge.actions.http import (
    USER_AGENT,
    ApiClient,
    Rejection,
    RequestHook,
    RequestRecord,
    Transient,
    _json,
    response_json,
)
from sgbridge.destinations.classify import short_body

__all__ = ["USER_AGENT", "Rejection", "RequestHook", "RequestRecord", "SendGridApi", "Transient", "api_errors",
           "rejection", "response_json"]


@dataclass
class SendGridApi(ApiClient):
    authorization: str = ""
    endpoint: str = "https://api.sendgrid.com"
    _field_cache: list[dict[str, Any]] | None = field(default=None, init=False)

    @classmethod
    def with_key(cls, client: httpx.AsyncClient, api_key: str, endpoint: str = "https://api.sendgrid.com",
                 **options: Any) -> SendGridApi:
        return cls(client, f"Bearer {api_key}", endpoint, **options)

    # -- custom field definitions, cached -------------------------------------------------
    async def custom_fields(self, refresh: bool = False) -> list[dict[str, Any]]:
        """``[{id, name, field_type}]``; fetched once, again with ``refresh`` (on a name miss)."""
        if self._field_cache is None or refresh:
            response = await self.call("GET", "/v3/marketing/field_definitions")
            if response.status_code >= 400:
                raise Rejection(response.status_code, f"field definitions: HTTP {response.status_code}: "
                                f"{short_body(response)}")
            data = _json(response)
            fields = data.get("custom_fields") if isinstance(data, dict) else None
            self._field_cache = [f for f in fields or [] if isinstance(f, dict) and "id" in f and "name" in f]
        return self._field_cache


def api_errors(response: httpx.Response) -> list[dict[str, Any]]:
    """SendGrid's ``{"errors": [{"field", "message"}]}``, as a list (empty when absent)."""
    data = _json(response)
    errors = data.get("errors") if isinstance(data, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def rejection(response: httpx.Response, what: str) -> Rejection:
    messages = "; ".join(str(e.get("message")) for e in api_errors(response)) or short_body(response)
    return Rejection(response.status_code, f"{what}: HTTP {response.status_code}: {messages}")
