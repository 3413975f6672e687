"""HTTP handlers for the SendGrid Event Webhook: verify → parse → journal → 2xx.

The 2xx is sent only after the journal commit is durable. Anything wrong with a request is
answered with a 4xx and a reason, and nothing of it is stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sgbridge.delivery import metrics
from sgbridge.inbound.sendgrid import BadPayload, PayloadTooLarge, decompress, parse_events
from sgbridge.inbound.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, InvalidPublicKey, SignatureVerifier
from sgbridge.journal import Journal
from sgbridge.model import InboundRequest
from sgbridge.settings import ConfigError, Settings, SourceSettings

log = logging.getLogger(__name__)


class SendGridInbound:
    def __init__(self, settings: Settings, journal: Journal, on_append: Callable[[], None]) -> None:
        self.settings = settings
        self.journal = journal
        self.on_append = on_append
        self.max_body = settings.ingest.max_body_bytes
        self.verifiers: dict[str, SignatureVerifier] = {}
        for name, source in settings.sources.items():
            try:
                self.verifiers[name] = SignatureVerifier(source.public_keys)
            except InvalidPublicKey as exc:
                raise ConfigError(f"sources.{name}.public_keys: {exc}") from None
            if not source.unsigned and not source.public_keys:
                log.warning("source %r has no public key: its webhook posts will be refused (401). Set "
                            "SENDGRID_WEBHOOK_PUBLIC_KEY or sources.%s.public_keys", name, name)

    async def handle(self, request: Request) -> Response:
        name = request.path_params.get("source", "default")
        response = await self._handle(request, name)
        metrics.INBOUND_REQUESTS.labels(name if name in self.settings.sources else "(unknown)",
                                        str(response.status_code)).inc()
        return response

    async def _read_body(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_signature(self, request: Request, source: SourceSettings, name: str, raw: bytes,
                         body: bytes) -> Response | None:
        if source.unsigned:
            return None
        verifier = self.verifiers[name]
        if not verifier:
            return _error(401, f"source {name!r} has no public key configured, so no request can be verified")
        signature = request.headers.get(SIGNATURE_HEADER)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if not signature or timestamp is None:
            return _error(401, f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
        # SendGrid signs the bytes it sends; a gzip-encoding proxy may sit in between.
        if not (verifier.verify(signature, timestamp, body) or (raw is not body and
                                                                 verifier.verify(signature, timestamp, raw))):
            return _error(403, "signature does not match the body and timestamp for any configured key")
        if source.timestamp_tolerance_seconds is not None:
            try:
                skew = abs(time.time() - float(timestamp))
            except ValueError:
                return _error(403, "timestamp header is not a Unix time")
            if skew > source.timestamp_tolerance_seconds:
                return _error(403, f"timestamp is {skew:.0f}s away from now, over the configured tolerance")
        return None

    async def _handle(self, request: Request, name: str) -> Response:
        source = self.settings.sources.get(name)
        if source is None:
            return _error(404, f"no SendGrid source named {name!r} is configured")
        raw = await self._read_body(request)
        if raw is None:
            return _error(413, f"body is over the {self.max_body}-byte limit")
        try:
            body = decompress(raw, request.headers.get("content-encoding"), self.max_body)
        except PayloadTooLarge as exc:
            return _error(413, str(exc))
        except BadPayload as exc:
            return _error(400, str(exc))
        refused = self._check_signature(request, source, name, raw, body)
        if refused is not None:
            return refused
        try:
            events = parse_events(name, body)
        except BadPayload as exc:
            return _error(400, str(exc))
        result = await self.journal.append(InboundRequest(name, time.time(), body, events))
        metrics.INBOUND_EVENTS.labels(name, "accepted").inc(result.accepted)
        metrics.INBOUND_EVENTS.labels(name, "duplicate").inc(result.duplicates)
        if result.accepted:
            self.on_append()
        return JSONResponse({"received": len(events), "stored": result.accepted,
                             "duplicates": result.duplicates, "request_id": result.request_id})


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)
