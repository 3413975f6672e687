"""Segment events in: ``POST /webhooks/segment`` and the Tracking API ``POST /v1/<call>``.

Same rules as the SendGrid endpoint: authenticated (X-Signature, or a write key), 2xx only
after a durable commit, bad input refused with a reason and nothing of it stored.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from collections.abc import Callable

from sgbridge.delivery import metrics
from sgbridge.inbound.asgi import BodyTooLarge, ClientGone, Receive, Scope, Send, header, read_body, send_json
from sgbridge.inbound.routes import Refused
from sgbridge.inbound.segment import (
    EVENT_TYPES,
    Parsed,
    batch_length,
    parse_tracking_call,
    parse_webhook,
    verify_webhook_signature,
)
from sgbridge.inbound.sendgrid import BadPayload, PayloadTooLarge, decompress
from sgbridge.journal import Journal
from sgbridge.logs import context
from sgbridge.model import InboundRequest
from sgbridge.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/segment"
TRACKING_CALLS = frozenset(EVENT_TYPES | {"batch"})
_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 413: "payload_too_large"}


class SegmentInbound:
    def __init__(self, settings: Settings, journal: Journal, on_append: Callable[[], None]) -> None:
        inbound = settings.segment_inbound
        self.journal = journal
        self.on_append = on_append
        self.max_body = settings.ingest.max_body_bytes
        self.secret = inbound.shared_secret.get_secret_value() if inbound.shared_secret else None
        self.header_name = inbound.header_name
        self._header_key = inbound.header_name.lower().encode("latin-1")
        self.header_secret = inbound.header_secret.get_secret_value().encode() if inbound.header_secret else None
        self.accept_unsigned_elements = inbound.accept_unsigned_batch_elements
        self.unsigned = inbound.unsigned
        self.write_keys = [k.get_secret_value() for k in inbound.write_keys]

    @staticmethod
    def route_of(path: str) -> str | None:
        """`webhook`, a Tracking API call name, or None when the path is not ours."""
        if path.rstrip("/") == WEBHOOK_PATH:
            return "webhook"
        if path.startswith("/v1/"):
            call = path[4:].rstrip("/")
            if call in TRACKING_CALLS:
                return call
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.route_of(scope["path"]) or ""
        try:
            status, payload = 200, await self._handle(scope, receive, route)
        except Refused as refused:
            # `code` and `message` are what Segment's SDKs read from an error reply.
            status, payload = refused.status, {"success": False, "error": refused.reason, "message": refused.reason,
                                               "code": _ERROR_CODES.get(refused.status, "error")}
        except ClientGone:
            return
        metrics.INBOUND_REQUESTS.labels("segment:webhook" if route == "webhook" else "segment:api",
                                        str(status)).inc()
        await send_json(send, status, payload)

    async def _body(self, scope: Scope, receive: Receive) -> tuple[bytes, bytes]:
        try:
            raw = await read_body(scope, receive, self.max_body)
            return raw, decompress(raw, header(scope, b"content-encoding"), self.max_body)
        except (BodyTooLarge, PayloadTooLarge):
            raise Refused(413, f"body is over the {self.max_body}-byte limit") from None
        except BadPayload as exc:
            raise Refused(400, str(exc)) from None

    def _check_write_key(self, scope: Scope, from_body: str | None) -> None:
        given = from_body
        authorization = header(scope, b"authorization") or ""
        if authorization[:6].lower() == "basic ":
            try:
                given = base64.b64decode(authorization[6:].strip(), validate=True).decode().split(":", 1)[0]
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise Refused(401, "Authorization header is not valid HTTP Basic") from None
        if not self.write_keys:
            raise Refused(401, "no write keys are configured for the Tracking API (segment_inbound.write_keys)")
        if not given or not any(hmac.compare_digest(given.encode(), k.encode()) for k in self.write_keys):
            raise Refused(401, "missing or unknown write key (HTTP Basic user name, or writeKey in the body)")

    def _check_webhook_auth(self, scope: Scope, body: bytes) -> None:
        """X-Signature and/or the configured header secret; refuses unsigned batch elements."""
        if self.secret is None and self.header_secret is None:
            raise Refused(401, "no shared secret is configured for /webhooks/segment "
                               "(segment_inbound.shared_secret, or segment_inbound.header_secret)")
        if self.header_secret is not None:
            given = header(scope, self._header_key)
            if given is None or not hmac.compare_digest(given.encode("latin-1"), self.header_secret):
                raise Refused(401, f"the {self.header_name} header is missing or does not match "
                                   "segment_inbound.header_secret")
        if self.secret is not None:
            if not verify_webhook_signature(self.secret, body, header(scope, b"x-signature")):
                raise Refused(401, "X-Signature is missing or does not match the body")
            if self.header_secret is None and not self.accept_unsigned_elements:
                count = batch_length(body)
                if count > 1:
                    raise Refused(403, f"batch of {count} events: X-Signature covers only the first (as Segment "
                                       "signs batches), so the others could be anyone's. Set a custom header in "
                                       "Segment's Webhooks destination and segment_inbound.header_secret, or turn "
                                       "on segment_inbound.accept_unsigned_batch_elements knowingly")

    async def _handle(self, scope: Scope, receive: Receive, route: str) -> dict[str, object]:
        raw, body = await self._body(scope, receive)
        try:
            if route == "webhook":
                if not self.unsigned:
                    self._check_webhook_auth(scope, body)
                parsed: Parsed = parse_webhook(body)
            else:
                parsed = parse_tracking_call(route, body)
                self._check_write_key(scope, parsed.write_key)
        except BadPayload as exc:
            if route != "webhook":  # an unauthenticated caller learns nothing about the body
                self._check_write_key(scope, None)
            raise Refused(400, str(exc)) from None
        source = parsed.events[0].source if parsed.events else "segment"
        result = await self.journal.append(InboundRequest(source, time.time(), len(raw), parsed.events))
        for rejected in parsed.rejected:
            log.warning("Segment event refused: %s", rejected["error"],
                        extra=context(source=source, request_id=result.request_id))
        if log.isEnabledFor(logging.DEBUG):  # the hot path: no dict per request unless asked for
            log.debug("stored %d event(s), %d duplicate(s)", result.accepted, result.duplicates,
                      extra=context(source=source, request_id=result.request_id))
        if result.accepted:
            self.on_append()
        return {"success": True, "received": len(parsed.events) + len(parsed.rejected), "stored": result.accepted,
                "duplicates": result.duplicates, "rejected": parsed.rejected, "request_id": result.request_id}
