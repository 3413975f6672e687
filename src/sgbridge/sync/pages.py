"""SendGrid's pagination styles, as generators of pages (lists of objects).

Three styles exist (sendgrid-api.md §3.9): Marketing Campaigns lists and single sends page with
``page_size`` and follow ``_metadata.next`` (a full URL) until it is absent; suppression lists page
with ``limit`` and ``offset`` (and filter on ``start_time``/``end_time``); segments, unsubscribe
groups and field definitions come in one answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sgbridge.sync.api import SyncApi, SyncApiError

MAX_PAGES = 1_000_000  # a server that keeps answering "next" forever must not hang a sync


def token_pages(api: SyncApi, path: str, page_size: int, items: str = "result") -> Iterator[list[dict[str, Any]]]:
    """Follow ``_metadata.next`` from the first page until there is none."""
    url: str | None = api.url(path)
    params: dict[str, Any] | None = {"page_size": page_size}
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        if url is None:
            return
        data = api.get(url, params)
        page = data.get(items) if isinstance(data, dict) else None
        if not isinstance(page, list):
            raise SyncApiError(f"GET {url}: no '{items}' array in the answer")
        if page:
            yield [item for item in page if isinstance(item, dict)]
        metadata = data.get("_metadata") if isinstance(data, dict) else None
        following = metadata.get("next") if isinstance(metadata, dict) else None
        if not page or not following or following in seen:
            return
        seen.add(following)
        url, params = following, None  # the next link carries every parameter


def offset_pages(api: SyncApi, path: str, limit: int, params: dict[str, Any] | None = None
                 ) -> Iterator[list[dict[str, Any]]]:
    """``limit``/``offset`` pages until one comes back short."""
    offset = 0
    for _ in range(MAX_PAGES):
        page = api.get(path, {**(params or {}), "limit": limit, "offset": offset})
        if not isinstance(page, list):
            raise SyncApiError(f"GET {path}: expected a JSON array")
        rows = [item for item in page if isinstance(item, dict)]
        if rows:
            yield rows
        if len(page) < limit:
            return
        offset += limit


def one_page(api: SyncApi, path: str, items: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """An unpaginated answer: the array itself, or the array under ``items``."""
    data = api.get(path)
    page = data.get(items) if items and isinstance(data, dict) else data
    if not isinstance(page, list):
        raise SyncApiError(f"GET {path}: expected an array{f' under {items!r}' if items else ''}")
    rows = [item for item in page if isinstance(item, dict)]
    if rows:
        yield rows
