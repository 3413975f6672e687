"""Streams: which events of the log a destination reads.

Every event row carries its stream, derived from its source when it is appended: ``SENDGRID``
for the SendGrid sources (whatever their names), ``SEGMENT`` for Segment-born events
(``segment:webhook``, ``segment:api``). A destination consumes one stream (Segment and the
warehouse SendGrid's, the action destinations Segment's), and its claims read the index
``events_stream (stream, seq)``: they never touch the rows of the other stream. Integers, so an
SQLite row spends no byte on them (0 and 1 are stored in the record header).
"""

from __future__ import annotations

from sgbridge.inbound.segment import SEGMENT_SOURCES

SENDGRID = 0
SEGMENT = 1
NAMES = {SENDGRID: "sendgrid", SEGMENT: "segment"}


def stream_of(source: str) -> int:
    return SEGMENT if source in SEGMENT_SOURCES else SENDGRID
