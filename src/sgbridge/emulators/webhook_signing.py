"""Sign and frame Event Webhook bodies exactly as SendGrid does.

A receiver that verifies signatures can only be tested with bodies that are byte-for-byte
like SendGrid's, because the signature covers the raw bytes (``reference/sendgrid-api.md``
§1.1, §2): compact JSON, keys in alphabetical order, no HTML escaping, events separated by
``",\\r\\n"`` and a trailing ``"\\r\\n"``; signature = base64(DER ECDSA P-256/SHA-256 over
timestamp bytes followed by body bytes); public key = base64 of the DER SubjectPublicKeyInfo,
the string SendGrid's UI shows.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


@dataclass(frozen=True)
class WebhookKeyPair:
    private_key: ec.EllipticCurvePrivateKey
    public_key_base64: str  # what SendGrid shows; the bridge's SENDGRID_WEBHOOK_PUBLIC_KEY

    def private_key_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")


def public_key_base64(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def keypair_from_private_key(private_key: ec.EllipticCurvePrivateKey) -> WebhookKeyPair:
    return WebhookKeyPair(private_key, public_key_base64(private_key.public_key()))


def generate_keypair() -> WebhookKeyPair:
    return keypair_from_private_key(ec.generate_private_key(ec.SECP256R1()))


def load_private_key_pem(pem: str | bytes) -> ec.EllipticCurvePrivateKey:
    """Load an unencrypted PEM private key (PKCS#8 or SEC1); it must be a P-256 key."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("SendGrid webhook signing keys are ECDSA P-256 keys")
    return key


def sign(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """The ``X-Twilio-Email-Event-Webhook-Signature`` value for this timestamp and raw body."""
    der = private_key.sign(timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(der).decode("ascii")


def encode_event(event: Mapping[str, Any]) -> bytes:
    # orjson never escapes '<', '>' or '&' (Go needed SetEscapeHTML(false) to match) and
    # OPT_SORT_KEYS sorts nested objects too, as SendGrid's serializer does.
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def frame_encoded(encoded_events: Sequence[bytes]) -> bytes:
    """Frame already-encoded events (lets a sender reuse one encoding per event)."""
    return b"[" + b",\r\n".join(encoded_events) + b"]\r\n"


def frame_events(events: Sequence[Mapping[str, Any]]) -> bytes:
    """The POST body SendGrid would send for these events."""
    return frame_encoded([encode_event(e) for e in events])
