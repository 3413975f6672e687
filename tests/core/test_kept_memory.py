"""What a window holds in memory while it is sent: the messages ready for Segment take about their
length, not orjson's ~4 KB buffer each (sgbridge/jsonbytes.py)."""

from __future__ import annotations

import tracemalloc

import httpx
import orjson

from sgbridge.destinations.segment import SegmentDestination
from sgbridge.emulators.event_factory import EventFactory
from sgbridge.jsonbytes import dumps_kept
from sgbridge.model import StoredEvent
from sgbridge.settings import Settings


def test_dumps_kept_is_orjson_text() -> None:
    for value in EventFactory(7).batch(50):
        assert dumps_kept(value) == orjson.dumps(value)
    assert dumps_kept({"b": 1, "a": 2}, option=orjson.OPT_SORT_KEYS) == b'{"a":2,"b":1}'


def test_a_prepared_window_takes_about_the_size_of_its_messages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.model_validate({"database_url": f"sqlite:///{tmp_path / 'j.db'}",
                                        "segment": {"write_key": "k"},
                                        "sources": {"default": {"events": ["delivered", "open", "click",
                                                                           "bounce", "processed", "deferred"]}}})
    destination = SegmentDestination(settings, httpx.AsyncClient())
    events = [StoredEvent(i + 1, "default", str(e["event"]), 1_700_000_000.0 + i, i.to_bytes(16, "big"),
                          orjson.dumps(e)) for i, e in enumerate(EventFactory(3).batch(4000))]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        batches, skipped = destination.prepare(events)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    messages = [m for b in batches for m in b.messages]
    assert len(messages) + len(skipped) == len(events) and len(messages) > 3000
    text = sum(len(m.body) for m in messages)
    # The message text plus its object (~100 bytes each); orjson's own results kept ~4 KB more each.
    assert kept < text + 200 * len(messages), (kept / len(messages), text / len(messages))
