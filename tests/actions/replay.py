"""A stand-in for an API that answers with a peer fixture's recorded responses.

Segment's tests mock SendGrid with nock; their fixtures list those answers (``mock_responses``).
This ASGI app gives the same answers, matched as the segment-oracle README describes (unused
mock with the same method and full URL, then ``url_regex``, then same path without query, then
a mock without URL, then the last one matched by URL again, else ``200 {}``), and records every
request exactly as it arrived, so tests compare what the server received.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Received:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class ReplayApi:
    mocks: list[dict[str, Any]]
    received: list[Received] = field(default_factory=list)
    _used: set[int] = field(default_factory=set)
    _last: int | None = None

    def _pick(self, method: str, url: str, body: bytes) -> dict[str, Any] | None:
        path = url.split("?", 1)[0]

        def free(test: Any) -> int | None:
            for i, mock in enumerate(self.mocks):
                if i in self._used or mock.get("method", method).upper() != method:
                    continue
                raw = mock.get("request_body_raw")
                if raw is not None and raw.encode() != body:
                    continue
                if test(mock):
                    return i
            return None

        index = free(lambda m: m.get("url") == url)
        if index is None:
            index = free(lambda m: "url_regex" in m and re.search(m["url_regex"], url))
        if index is None:
            index = free(lambda m: m.get("url") and "?" not in m["url"] and m["url"] == path)
        if index is None:
            index = free(lambda m: "url" not in m and "url_regex" not in m)
        if index is not None:
            self._used.add(index)
            if self.mocks[index].get("url"):
                self._last = index
            return self.mocks[index]
        return self.mocks[self._last] if self._last is not None else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        host = next((v.decode() for k, v in scope["headers"] if k == b"host"), "")
        query = scope.get("query_string", b"").decode()
        url = f"{scope['scheme']}://{host}{scope['path']}" + (f"?{query}" if query else "")
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append(Received(scope["method"], url, headers, body))
        mock = self._pick(scope["method"], url, body)
        status = mock.get("status", 200) if mock else 200
        payload = orjson.dumps(mock["json"]) if mock and "json" in mock else b"{}"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})
