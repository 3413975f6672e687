"""The SendGrid Event Webhook endpoint: verify → parse → journal → 2xx.

The 2xx is sent only after the journal commit is durable. Anything wrong with a request is
answered with a 4xx and a reason, and nothing of it is stored. It is a bare ASGI endpoint (see
inbound/asgi.py for why), and signature checks run on a small thread pool: `cryptography`
releases the GIL while it verifies, so that work moves to the second core.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sgbridge.delivery import metrics
from sgbridge.inbound.asgi import BodyTooLarge, ClientGone, Receive, Scope, Send, header, read_body, send_json
from sgbridge.inbound.sendgrid import BadPayload, PayloadTooLarge, decompress, parse_body
from sgbridge.inbound.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, InvalidPublicKey, SignatureVerifier
from sgbridge.journal import Journal
from sgbridge.logs import context
from sgbridge.model import InboundRequest
from sgbridge.settings import ConfigError, Settings, SourceSettings

log = logging.getLogger(__name__)

PATH = "/webhooks/sendgrid"
_SIGNATURE = SIGNATURE_HEADER.lower().encode()
_TIMESTAMP = TIMESTAMP_HEADER.lower().encode()


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SendGridInbound:
    def __init__(self, settings: Settings, journal: Journal, on_append: Callable[[], None]) -> None:
        self.settings = settings
        self.journal = journal
        self.on_append = on_append
        self.max_body = settings.ingest.max_body_bytes
        self.verifiers: dict[str, SignatureVerifier] = {}
        self._verify_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sgbridge-verify")
        for name, source in settings.sources.items():
            try:
                self.verifiers[name] = SignatureVerifier(source.public_keys)
            except InvalidPublicKey as exc:
                raise ConfigError(f"sources.{name}.public_keys: {exc}") from None
            if not source.unsigned and not source.public_keys:
                log.warning("source %r has no public key: its webhook posts will be refused (401). Set "
                            "SENDGRID_WEBHOOK_PUBLIC_KEY or sources.%s.public_keys", name, name)

    def close(self) -> None:
        self._verify_pool.shutdown(wait=False)

    @staticmethod
    def source_of(path: str) -> str | None:
        """`default` for /webhooks/sendgrid, NAME for /webhooks/sendgrid/NAME, else None."""
        if path == PATH or path == PATH + "/":
            return "default"
        if path.startswith(PATH + "/"):
            name = path[len(PATH) + 1:].rstrip("/")
            if name and "/" not in name:
                return name
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self.source_of(scope["path"]) or ""
        try:
            status, payload = 200, await self._handle(scope, receive, name)
        except Refused as refused:
            status, payload = refused.status, {"error": refused.reason}
        except ClientGone:
            return
        metrics.INBOUND_REQUESTS.labels(name if name in self.settings.sources else "(unknown)", str(status)).inc()
        await send_json(send, status, payload)

    async def _check_signature(self, scope: Scope, source: SourceSettings, name: str, raw: bytes,
                               body: bytes) -> None:
        if source.unsigned:
            return
        verifier = self.verifiers[name]
        if not verifier:
            raise Refused(401, f"source {name!r} has no public key configured, so no request can be verified")
        signature = header(scope, _SIGNATURE)
        timestamp = header(scope, _TIMESTAMP)
        if not signature or timestamp is None:
            raise Refused(401, f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
        loop = asyncio.get_running_loop()
        # SendGrid signs the bytes it sends; a gzip-encoding proxy may sit in between.
        valid = await loop.run_in_executor(self._verify_pool, verifier.verify, signature, timestamp, body)
        if not valid and raw is not body:
            valid = await loop.run_in_executor(self._verify_pool, verifier.verify, signature, timestamp, raw)
        if not valid:
            raise Refused(403, "signature does not match the body and timestamp for any configured key")
        if source.timestamp_tolerance_seconds is not None:
            try:
                skew = abs(time.time() - float(timestamp))
            except ValueError:
                raise Refused(403, "timestamp header is not a Unix time") from None
            if not math.isfinite(skew):  # "nan" compares false with any tolerance
                raise Refused(403, "timestamp header is not a Unix time")
            if skew > source.timestamp_tolerance_seconds:
                raise Refused(403, f"timestamp is {skew:.0f}s away from now, over the configured tolerance")

    async def _handle(self, scope: Scope, receive: Receive, name: str) -> dict[str, object]:
        source = self.settings.sources.get(name)
        if source is None:
            raise Refused(404, f"no SendGrid source named {name!r} is configured")
        try:
            raw = await read_body(scope, receive, self.max_body)
        except BodyTooLarge:
            raise Refused(413, f"body is over the {self.max_body}-byte limit") from None
        try:
            body = decompress(raw, header(scope, b"content-encoding"), self.max_body)
        except PayloadTooLarge as exc:
            raise Refused(413, str(exc)) from None
        except BadPayload as exc:
            raise Refused(400, str(exc)) from None
        await self._check_signature(scope, source, name, raw, body)
        try:
            parsed = parse_body(name, body)
        except BadPayload as exc:
            raise Refused(400, str(exc)) from None
        events = parsed.events
        result = await self.journal.append(InboundRequest(name, time.time(), len(body), events))
        metrics.INBOUND_EVENTS.labels(name, "accepted").inc(result.accepted)
        metrics.INBOUND_EVENTS.labels(name, "duplicate").inc(result.duplicates)
        if parsed.rejected:
            metrics.INBOUND_EVENTS.labels(name, "rejected").inc(len(parsed.rejected))
            for rejected in parsed.rejected:
                log.warning("SendGrid event refused (source %s): %s", name, rejected["error"],
                            extra=context(source=name, request_id=result.request_id))
        if log.isEnabledFor(logging.DEBUG):  # the hot path: no dict per request unless asked for
            log.debug("stored %d event(s), %d duplicate(s)", result.accepted, result.duplicates,
                      extra=context(source=name, request_id=result.request_id))
        if result.accepted:
            self.on_append()
        return {"received": len(events) + len(parsed.rejected), "stored": result.accepted,
                "duplicates": result.duplicates, "rejected": parsed.rejected, "request_id": result.request_id}
