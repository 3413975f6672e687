"""SendGrid events → the warehouse, as one more destination of the delivery engine.

Each window of the journal becomes one dlt load per source dataset (per-type tables plus
``activity``). An unavailable warehouse is a ``Retry``: the window waits and nothing is lost.
Loads run in a worker thread so ingestion keeps its event loop.

A load the warehouse refuses (``LoadRefused``) is split in halves, and those it refuses again in
halves, down to single events, so that one event the warehouse will not take does not hold the
window (and every window behind it) until the maximum age. An event refused alone is rejected
only if some other part of the window is in the warehouse (loaded in this search, or before): a
warehouse that refuses everything (a permission taken away) must delay the window, not reject it.
The search also stops, and the window waits, after more refusals than a few bad events explain:
in a row, twice the halvings from the window down to one event, plus two; in all, four times
plus eight (80 loads for 200,000 events). A table that refuses many events is for an operator
to fix; its events wait for that, rather than becoming dead letters one by one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from dlt.pipeline.exceptions import PipelineStepFailed

from sgbridge.inbound.segment import SEGMENT_SOURCES
from sgbridge.model import OutcomeRecord, StoredEvent
from sgbridge.outcomes import Delivered, Outcome, Retry
from sgbridge.settings import Settings
from sgbridge.warehouse.loader import LoadRefused, Warehouse
from sgbridge.warehouse.location import target

NAME = "warehouse"
log = logging.getLogger(__name__)


@dataclass(slots=True)
class LoadBatch:
    messages: list[StoredEvent]


@dataclass(slots=True)
class _Search:
    """The state of one window's search for the events the warehouse refuses."""

    refusals_allowed: int  # in a row: more than one bad event explains
    loads_left: int  # in all: more than a few bad events need
    refused_in_a_row: int = 0
    loaded: bool = False  # some part of the window is in the warehouse (loaded now, or before)

    def took(self) -> None:
        self.loaded, self.refused_in_a_row = True, 0


class WarehouseDestination:
    name = NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        where = target(settings)
        self.url = where.where
        self.warehouse = Warehouse(where.destination, where.pipelines_dir, load_lock=where.lock, keeper=where.keeper)
        self._loading: set[asyncio.Future[Any]] = set()

    def consumes(self, source: str) -> bool:
        return source not in SEGMENT_SOURCES

    def prepare(self, events: list[StoredEvent]) -> tuple[list[LoadBatch], list[OutcomeRecord]]:
        return ([LoadBatch(list(events))] if events else []), []

    def split(self, batch: LoadBatch) -> list[LoadBatch]:
        half = len(batch.messages) // 2
        return [LoadBatch(batch.messages[:half]), LoadBatch(batch.messages[half:])]

    def _load_sorting_out(self, events: list[StoredEvent]) -> list[tuple[int, str]]:
        """Load the events; (seq, reason) of those the warehouse refuses alone (see the module)."""
        halvings = max(1, len(events)).bit_length()
        search = _Search(refusals_allowed=2 * halvings + 2, loads_left=4 * halvings + 8)
        refused = self._load_part(events, search)
        if refused and not search.loaded:
            raise LoadRefused(f"every part refused, none loaded: {refused[0][1]}")
        return refused

    def _load_part(self, events: list[StoredEvent], search: _Search) -> list[tuple[int, str]]:
        search.loads_left -= 1
        try:
            try:
                self._load(events, search)
            except PipelineStepFailed:
                # dlt kept the failed load pending. Once more, now: the load is finished (a passing
                # fault), or given up and the rows loaded afresh, which are refused if they fail again.
                self._load(events, search)
        except LoadRefused as exc:
            search.refused_in_a_row += 1
            if search.refused_in_a_row > search.refusals_allowed or search.loads_left <= 0:
                # More refusals than a few bad events explain: the warehouse (or a whole table)
                # refuses, and the window waits for it to be fixed. What loaded meanwhile stays.
                raise
            if len(events) == 1:
                return [(events[0].seq, f"the warehouse refused this event: {str(exc)[:300]}")]
            half = len(events) // 2
            return self._load_part(events[:half], search) + self._load_part(events[half:], search)
        return []

    def _load(self, events: list[StoredEvent], search: _Search | None = None) -> None:
        """Load the events not in the warehouse yet (``search`` is told of each dataset's part
        that is in the warehouse now: loaded, or found there already)."""
        by_dataset: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_dataset.setdefault(self.settings.warehouse_dataset_for(event.source), []).append(event)
        for dataset, group in by_dataset.items():
            self.warehouse.loader(dataset).load(group)
            if search is not None:
                search.took()

    async def send(self, batch: LoadBatch) -> Outcome:
        # shield: a cancelled worker must not leave a load running unseen; close() waits for it.
        loading = asyncio.ensure_future(asyncio.to_thread(self._load_sorting_out, batch.messages))
        self._loading.add(loading)
        loading.add_done_callback(self._finished)
        try:
            refused = await asyncio.shield(loading)
        except Exception as exc:  # the warehouse is down, full, or refuses everything: the window waits
            return Retry(f"warehouse load failed: {type(exc).__name__}: {str(exc)[:300]}")
        return Delivered(refused=tuple(refused))

    def _finished(self, loading: asyncio.Future[Any]) -> None:
        self._loading.discard(loading)
        # A load still running when its worker stopped ends with nobody awaiting it: its error is
        # taken here (asyncio would report it as never retrieved); the window is loaded again later.
        if not loading.cancelled() and (error := loading.exception()) is not None:
            log.debug("warehouse load failed: %s", str(error)[:300])

    async def close(self) -> None:
        """Wait for loads still running in their threads (at shutdown)."""
        if self._loading:
            await asyncio.wait(set(self._loading))
        if self.warehouse.keeper is not None:
            self.warehouse.keeper.close()
