"""Segments 2.0, read side (tsg_mc_segments_2.0_v3, sendgrid-api.md §3.4).

``GET /v3/marketing/segments/2.0`` answers ``{"results": [...]}`` without pagination (the
spec declares a single object; the real body, and Airbyte's connector, use ``results``).
Filters, from the spec's table: ``ids`` wins over everything; otherwise ``parent_list_ids``
(comma-separated) keeps segments on any of those lists and ``no_parent_list_id=true`` adds
(or, alone, keeps only) segments without a parent list.

Counts and samples are SendGrid's hourly snapshots; the emulator derives
``sample_updated_at`` / ``next_sample_update`` from the segment's update time on an hourly
cycle of the state clock, and counts the evaluated members that still exist (see
``state.Segment``).
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from starlette.responses import Response

from sgbridge.emulators.sendgrid.contact_ops import contact_data
from sgbridge.emulators.sendgrid.contacts import MARKETING_READ
from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.state import Segment, SendGridEmulatorState
from sgbridge.emulators.sendgrid.util import csv_ids, iso, json_response, not_found

SAMPLE_REFRESH_SECONDS = 3600
SAMPLE_SIZE = 50


def _sample_times(segment: Segment, now: float) -> tuple[float, float]:
    """(last sample update, next one): hourly since the segment was last changed."""
    cycles = max(0, math.floor((now - segment.updated_at) / SAMPLE_REFRESH_SECONDS))
    last = segment.updated_at + cycles * SAMPLE_REFRESH_SECONDS
    return last, last + SAMPLE_REFRESH_SECONDS


def segment_summary(state: SendGridEmulatorState, segment: Segment) -> dict[str, Any]:
    """A segment as the listing shows it (``all_segments_response``)."""
    sampled, next_sample = _sample_times(segment, state.now())
    return {
        "id": segment.id,
        "name": segment.name,
        "contacts_count": state.segment_size(segment),
        "created_at": iso(segment.created_at),
        "updated_at": iso(segment.updated_at),
        "sample_updated_at": iso(sampled),
        "next_sample_update": iso(next_sample),
        "parent_list_ids": list(segment.parent_list_ids),
        "query_version": "2",
        "status": {"query_validation": "VALID"},
    }


def _selected(call: Call) -> list[Segment]:
    segments = list(call.state.segments.values())
    ids = [part for value in call.params.get("ids") or [] for part in csv_ids(value)]
    if ids:
        return [s for s in segments if s.id in ids]
    parents = set(csv_ids(str(call.params.get("parent_list_ids") or "")))
    without_parent = bool(call.params.get("no_parent_list_id"))
    if not parents and not without_parent:
        return segments
    return [
        s for s in segments
        if (parents and not parents.isdisjoint(s.parent_list_ids)) or (without_parent and not s.parent_list_ids)
    ]


def all_segments(call: Call) -> Response:
    return json_response({"results": [segment_summary(call.state, s) for s in _selected(call)]})


def get_segment(call: Call) -> Response:
    state = call.state
    segment = state.segments.get(call.params["segment_id"])
    if segment is None:
        raise not_found("segment not found", "segment_id")
    data = segment_summary(state, segment)
    data["query_dsl"] = segment.query_dsl
    sample: list[dict[str, Any]] = []
    if call.params.get("contacts_sample", True):  # "Defaults to true"
        members = state.segment_members(segment)
        newest = heapq.nlargest(SAMPLE_SIZE, members, key=lambda c: c.updated_at)
        sample = [contact_data(state, c) for c in newest]
    data["contacts_sample"] = sample
    return json_response(data)


ENDPOINTS = [
    Endpoint("GET", "/v3/marketing/segments/2.0", all_segments, MARKETING_READ),
    Endpoint("GET", "/v3/marketing/segments/2.0/{segment_id}", get_segment, MARKETING_READ),
]
