"""Token pagination of the Marketing Campaigns listings (lists, single sends, templates).

SendGrid pages these with ``page_size`` and an opaque ``page_token`` and puts full URLs in
``_metadata``: ``self``, ``next`` (absent on the last page), ``prev`` (absent on the first)
and ``count`` (items across all pages). Clients follow ``_metadata.next`` as it is, which is
what Airbyte's connector does, so these URLs carry every query parameter of the listing.
The emulator's token encodes an offset; clients must not (and cannot usefully) decode it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from sgbridge.emulators.sendgrid.util import bad_request

T = TypeVar("T")


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    """The offset a token stands for; 400 ``invalid page_token`` for anything else."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = text.partition(":")
        if kind == "offset" and number.isdigit():
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise bad_request("invalid page_token", "page_token")


def token_page(
    items: Sequence[T], *, url: str, size: int, token: str | None, query: Mapping[str, Any] | None = None
) -> tuple[Sequence[T], dict[str, Any]]:
    """One page of ``items`` and its ``_metadata``; ``url`` is the listing's full URL without query."""
    if size < 1:
        raise bad_request("page_size must be at least 1", "page_size")
    offset = decode_page_token(token) if token else 0
    fixed = dict(query or {})

    def page_url(at: int) -> str:
        return f"{url}?{urlencode({**fixed, 'page_size': size, 'page_token': encode_page_token(at) if at else ''})}"

    metadata: dict[str, Any] = {"self": page_url(offset), "count": len(items)}
    if offset + size < len(items):
        metadata["next"] = page_url(offset + size)
    if offset > 0:
        metadata["prev"] = page_url(max(0, offset - size))
    return items[offset:offset + size], metadata
