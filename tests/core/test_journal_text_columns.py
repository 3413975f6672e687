"""Reasons and details the journal writes come from what the far side answered, and may quote an
event's values: a NUL in them failed the PostgreSQL commit (text cannot hold one), so the window
was never settled and its destination stuck. They are written with U+FFFD in its place."""

from __future__ import annotations

import time

import pytest

from sgbridge import outcomes as oc
from sgbridge.inbound.sendgrid import parse_events
from sgbridge.journal import Journal
from sgbridge.model import AttemptRecord, InboundRequest, OutcomeRecord

pytestmark = pytest.mark.anyio


async def test_nul_in_reasons_and_details_is_written_as_a_replacement_character(database_url: str) -> None:
    journal = Journal(database_url)
    try:
        body = b'[{"event":"bounce","email":"a\\u0000b@example.com","sg_event_id":"nul-1"}]'
        await journal.append(InboundRequest("default", time.time(), len(body), parse_events("default", body)))
        window = await journal.claim_window("segment", "test", 10, 30)
        assert window is not None
        await journal.extend_claim(window.claim_id, 30, last_error="503 for 'a\x00b@example.com'")
        await journal.record_attempts([AttemptRecord("segment", time.time(), 1.0, "http://x/\x00", 400, "rejected",
                                                     "email 'a\x00b@example.com' is not valid", [window.seq_lo])])
        position = await journal.complete_window(window, [OutcomeRecord(
            window.seq_lo, oc.REJECTED, "email 'a\x00b@example.com' is not valid", 400)])
        assert position == window.seq_hi  # settled: the destination moves on
        [letter] = journal.dead_letters()
        assert letter["reason"] == "email 'a\ufffdb@example.com' is not valid"
        assert await journal.mail_begin("hook", ["m\x00"]) == {}
        await journal.mail_finish("hook", {"m\x00": ("unsent", "refused: 'a\x00'")})
        assert await journal.mail_begin("hook", ["m\x00"]) == {"m\x00": "unsent"}  # keyed as the caller gave it
    finally:
        journal.close()
