"""Segment HTTP Tracking API emulator (Starlette ASGI app).

The bridge's outbound side is only trustworthy if it is tested against something that is as
strict as Segment: same endpoints, same auth, same size limits, same "200 but dropped"
behaviour and the same global ``messageId`` dedupe. This app provides that offline, records
what it accepted and lets tests inject failures (see ``faults``).

Tracking endpoints: ``POST /v1/batch|track|identify|page|screen|group|alias``.
Control endpoints (never faulted)::

    GET    /_emulator/messages?offset=&limit=&event=&type=&write_key=  -> {"messages": [...], "total": N}
    DELETE /_emulator/messages                                         -> reset messages, ids and counters
    GET    /_emulator/stats                                            -> counters
    GET    /_emulator/rejections                                       -> the last rejected events
    GET|POST|DELETE /_emulator/faults                                  -> list / add / clear faults

The Profile API (``GET /v1/spaces/<space>/collections/users/profiles/<id>/traits``) answers the
traits of the identify calls accepted (emulators/segment_profiles.py).

In-process code can skip HTTP and use ``app.state.emulator`` (a ``SegmentEmulator``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgbridge.emulators.faults import FaultInjector, FaultRule, fault_response, faults_control
from sgbridge.emulators.segment_profiles import ProfileApi
from sgbridge.emulators.segment_state import (
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    SegmentEmulatorState,
)

SINGLE_CALLS = ("track", "identify", "page", "screen", "group", "alias")
DEFAULT_PAGE_SIZE = 1000


@dataclass
class SegmentEmulator:
    """Everything one app instance owns: the recorded state and the fault plan."""

    state: SegmentEmulatorState
    faults: FaultInjector = field(default_factory=FaultInjector)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip`` and enforce the size limit on the real payload.

    The limit applies to the decompressed JSON (a 2 MB batch does not become acceptable by
    being gzipped), and decompression stops just past it so a gzip bomb costs nothing.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        body = raw
    elif encoding == "gzip":
        decompressor = zlib.decompressobj(wbits=31)
        try:
            body = decompressor.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise _BadRequest(400, f"invalid gzip body: {exc}") from exc
        if len(body) <= limit and not decompressor.eof:
            raise _BadRequest(400, "invalid gzip body: truncated")
    else:
        raise _BadRequest(400, f"unsupported Content-Encoding: {encoding}")
    if len(body) > limit:
        raise _BadRequest(400, f"request body exceeds {limit // 1024} KB")
    return body


def _write_key(request: Request, payload: dict[str, Any]) -> str | None:
    """HTTP Basic (write key as user name, empty password) wins over ``writeKey`` in the body."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, _password = decoded.partition(":")
        return user or None
    key = payload.get("writeKey")
    return key if isinstance(key, str) and key else None


def _ingest(request: Request, raw: bytes, kind: str) -> Response:
    """Validate and record one tracking request; the answer Segment would give."""
    state: SegmentEmulatorState = request.app.state.emulator.state
    state.requests += 1
    limit = MAX_BATCH_BYTES if kind == "batch" else MAX_EVENT_BYTES
    try:
        body = _decode_body(raw, request.headers.get("content-encoding", ""), limit)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _BadRequest(400, f"invalid JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise _BadRequest(400, "request body must be a JSON object")
        write_key = _write_key(request, payload)
        if not state.is_authorized(write_key):
            raise _BadRequest(401, "missing or invalid write key")
        if kind == "batch" and not isinstance(payload.get("batch"), list):
            raise _BadRequest(400, '"batch" must be an array')
    except _BadRequest as exc:
        if exc.status == 401:
            state.unauthorized += 1
        else:
            state.bad_requests += 1
        return _json({"error": exc.message}, exc.status)
    assert write_key is not None  # is_authorized() refuses None
    if kind == "batch":
        state.ingest_batch(payload, write_key)
    else:
        state.ingest_single(payload, kind, write_key)
    return _json({"success": True})


async def _apply(rule: FaultRule) -> Response | None:
    if rule.delay:
        await asyncio.sleep(rule.delay)
    return fault_response(rule) if rule.fails_response else None


def _tracking_endpoint(kind: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        emulator: SegmentEmulator = request.app.state.emulator
        raw = await request.body()  # faults act after the request was read, like a real server
        rule = emulator.faults.pick(request.url.path)
        if rule is not None and not rule.process:
            failed = await _apply(rule)
            if failed is not None:
                return failed  # a faulted request records nothing
            return _ingest(request, raw, kind)
        response = _ingest(request, raw, kind)
        if rule is not None:
            # process=true: the data was recorded but the client never learns it ("ack lost").
            failed = await _apply(rule)
            if failed is not None:
                return failed
        return response

    endpoint.__name__ = f"segment_{kind}"
    return endpoint


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise _BadRequest(400, f"{name} must be an integer") from exc
    if number < 0:
        raise _BadRequest(400, f"{name} must be >= 0")
    return number


async def get_messages(request: Request) -> Response:
    state: SegmentEmulatorState = request.app.state.emulator.state
    try:
        offset = _int_param(request, "offset", 0) or 0
        limit = _int_param(request, "limit", DEFAULT_PAGE_SIZE)
    except _BadRequest as exc:
        return _json({"error": exc.message}, exc.status)
    params = request.query_params
    body = state.messages_json(
        offset=offset,
        limit=limit,
        event=params.get("event"),
        msg_type=params.get("type"),
        write_key=params.get("write_key"),
    )
    return Response(body, media_type="application/json")


async def delete_messages(request: Request) -> Response:
    request.app.state.emulator.state.reset()
    return _json({"success": True})


async def get_stats(request: Request) -> Response:
    emulator: SegmentEmulator = request.app.state.emulator
    return _json({**emulator.state.stats(), "faults_injected": emulator.faults.injected})


async def get_rejections(request: Request) -> Response:
    state: SegmentEmulatorState = request.app.state.emulator.state
    return _json({"rejections": list(state.recent_rejections), "total": state.rejected})


async def faults_endpoint(request: Request) -> Response:
    faults: FaultInjector = request.app.state.emulator.faults
    return await faults_control(faults, request.method, await request.body())


async def _profile_endpoint(request: Request) -> Response:
    emulator: SegmentEmulator = request.app.state.emulator
    rule = emulator.faults.pick(request.url.path)
    if rule is not None:
        failed = await _apply(rule)
        if failed is not None:
            return failed
    api: ProfileApi = request.app.state.profile_api
    return await api.traits(request)


def create_segment_emulator(
    write_keys: Iterable[str] | None = None,
    *,
    keep_messages: bool = True,
    fault_seed: int | None = None,
    profile_tokens: dict[str, str] | None = None,
) -> Starlette:
    """Build the emulator app.

    ``write_keys=None`` accepts any non-empty key. ``keep_messages=False`` keeps only the
    messageId set and counters (for benchmarks). ``fault_seed`` makes probabilistic faults
    reproducible. ``profile_tokens``: the Profile API's access token per space (None: any
    non-empty token opens any space).
    """
    routes = [Route("/v1/batch", _tracking_endpoint("batch"), methods=["POST"])]
    routes += [Route(f"/v1/{kind}", _tracking_endpoint(kind), methods=["POST"]) for kind in SINGLE_CALLS]
    routes += [
        Route("/_emulator/messages", get_messages, methods=["GET"]),
        Route("/_emulator/messages", delete_messages, methods=["DELETE"]),
        Route("/_emulator/stats", get_stats, methods=["GET"]),
        Route("/_emulator/rejections", get_rejections, methods=["GET"]),
        Route("/_emulator/faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
        Route("/v1/spaces/{space}/collections/users/profiles/{identity}/traits", _profile_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = SegmentEmulator(
        state=SegmentEmulatorState(write_keys, keep_messages=keep_messages),
        faults=FaultInjector(seed=fault_seed),
    )
    state = app.state.emulator.state
    app.state.profile_api = ProfileApi(lambda: state.profiles, profile_tokens)
    return app


async def serve_segment_emulator(
    host: str = "127.0.0.1",
    port: int = 8765,
    write_keys: Iterable[str] | None = None,
    *,
    keep_messages: bool = True,
    log_level: str = "info",
    profile_tokens: dict[str, str] | None = None,
) -> None:
    """Run the emulator under uvicorn until cancelled (``sgbridge emulate segment``)."""
    from sgbridge.emulators.serving import serve_app

    app = create_segment_emulator(write_keys, keep_messages=keep_messages, profile_tokens=profile_tokens)
    await serve_app(app, host=host, port=port, log_level=log_level)
