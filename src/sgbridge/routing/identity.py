"""Identity rules shared by every mapping."""

from __future__ import annotations

import hashlib


def anonymous_id_for_email(email: str) -> str:
    """SHA-256 hex of the trimmed, lower-cased address, as SendGrid's native source sends it."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


def message_id_for(key: bytes) -> str:
    """Deterministic Segment messageId from an event's dedupe key.

    The same event always gets the same id, so our own retries (and a crash followed by a
    resend) are removed by Segment's messageId dedupe. 36 characters, under Segment's 100.
    """
    return "sgb-" + key.hex()
