"""API keys and their scopes.

SendGrid authenticates with ``Authorization: Bearer <API key>`` and restricts each key to a set
of permission scopes (``mail.send``, ``asm.groups.read``...): a key without the scope an
endpoint needs gets 403 ``access forbidden``, a missing or unknown key 401. Scope names follow
SendGrid's API key permission list where it is known; the Marketing Campaigns pair
``marketing.read`` / ``marketing.write`` is the emulator's own split (only ``marketing.read``
is attested, by Airbyte's setup guide).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sgbridge.emulators.sendgrid.util import ApiError, FieldError

MISSING_KEY = "authorization required"
BAD_KEY = "The provided authorization grant is invalid, expired, or revoked"
FORBIDDEN = "access forbidden"

# Scopes a full-access key reports from GET /v3/scopes, beyond the ones endpoints require.
EXTRA_FULL_ACCESS_SCOPES = frozenset({"suppression.read", "templates.read", "marketing.read", "marketing.write"})

ApiKeys = Iterable[str] | Mapping[str, Iterable[str] | None] | None


class KeyRing:
    """Which bearer tokens are accepted and what each may do.

    ``api_keys`` may be ``None`` (any non-empty key, full access), an iterable of keys (each
    with full access) or a mapping ``key -> scopes`` where ``None`` means full access.
    """

    def __init__(self, api_keys: ApiKeys, full_access: Iterable[str]) -> None:
        self.full_access = frozenset(full_access) | EXTRA_FULL_ACCESS_SCOPES
        self.keys: dict[str, frozenset[str]] | None
        if api_keys is None:
            self.keys = None
        elif isinstance(api_keys, Mapping):
            self.keys = {
                key: self.full_access if scopes is None else frozenset(scopes) for key, scopes in api_keys.items()
            }
        else:
            self.keys = dict.fromkeys(api_keys, self.full_access)

    def authenticate(self, authorization: str | None) -> tuple[str, frozenset[str]]:
        """The key and its scopes, or ApiError(401)."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, FieldError(None, MISSING_KEY))
        if self.keys is None:
            return token, self.full_access
        scopes = self.keys.get(token)
        if scopes is None:
            raise ApiError(401, FieldError(None, BAD_KEY))
        return token, scopes

    @staticmethod
    def authorize(scopes: frozenset[str], needed: Iterable[str]) -> None:
        """Any one of ``needed`` suffices (e.g. ``suppression.read`` or the narrower scope)."""
        required = tuple(needed)
        if required and scopes.isdisjoint(required):
            raise ApiError(403, FieldError(None, FORBIDDEN))
