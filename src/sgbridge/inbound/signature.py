"""SendGrid Signed Event Webhook verification (ECDSA P-256 / SHA-256).

The signed message is the timestamp header's bytes followed by the raw body bytes exactly as
received: SendGrid frames events with ``,\\r\\n`` and a trailing ``\\r\\n``, so re-serialised
JSON would not verify. Several keys are accepted at once so a key can be rotated.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

_ALGORITHM = ec.ECDSA(hashes.SHA256())


class InvalidPublicKey(ValueError):
    """A configured public key cannot be used (reported at start-up, naming the key's position)."""


def load_public_key(key_base64: str) -> ec.EllipticCurvePublicKey:
    """Load a key as SendGrid shows it: base64 of a DER SubjectPublicKeyInfo (PEM also accepted)."""
    text = key_base64.strip()
    if text.startswith("-----BEGIN"):
        text = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
        key = load_der_public_key(der)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPublicKey(f"not a base64 DER public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidPublicKey("not an ECDSA P-256 public key")
    return key


class SignatureVerifier:
    """Verifies a request against any of a source's keys."""

    def __init__(self, keys_base64: Iterable[str]) -> None:
        self._keys = [load_public_key(k) for k in keys_base64]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def verify(self, signature_b64: str | None, timestamp: str | None, body: bytes) -> bool:
        if not signature_b64 or timestamp is None:
            return False
        try:
            signature = base64.b64decode(signature_b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        message = timestamp.encode("utf-8") + body
        for key in self._keys:
            try:
                key.verify(signature, message, _ALGORITHM)
                return True
            except InvalidSignature:
                continue
        return False
