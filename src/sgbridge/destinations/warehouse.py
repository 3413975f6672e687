"""SendGrid events → the warehouse, as one more destination of the delivery engine.

Each window of the journal becomes one dlt load per source dataset (per-type tables plus
``activity``). An unavailable warehouse, or a transient fault (delivery/faults.py), is a
``Retry``: the window waits and nothing is lost. Loads run in a worker thread so ingestion keeps
its event loop.

A load the warehouse refuses (``LoadRefused``) is a ``Refused``: the delivery engine halves the
window to find the event at fault and rejects it only on proof — refused alone twice, with the
same kind of error, and some other part of the window in the warehouse (or the rows could not be
built at all: ``Refused.local``). The rule, and the search's budget, are the engine's, the same
for every destination: see delivery/search.py.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from dlt.pipeline.exceptions import PipelineStepFailed

from sgbridge.delivery.faults import cause, describe, is_transient, kind_of
from sgbridge.journal import Journal, streams
from sgbridge.journal.streams import stream_of
from sgbridge.model import OutcomeRecord, StoredEvent
from sgbridge.outcomes import Delivered, Outcome, Refused, Retry
from sgbridge.settings import Settings
from sgbridge.warehouse.loader import LoadRefused, Warehouse
from sgbridge.warehouse.location import target

NAME = "warehouse"
log = logging.getLogger(__name__)


@dataclass(slots=True)
class LoadBatch:
    messages: list[StoredEvent]


class WarehouseDestination:
    name = NAME
    stream = streams.SENDGRID
    # Windows are claimed without the events' bodies, which each load reads a chunk at a time
    # (``Journal.with_bodies``): a 200,000-event window held ~140 MB of bodies for the whole load.
    claims_bodies = False

    def __init__(self, settings: Settings, journal: Journal) -> None:
        self.settings = settings
        self.journal = journal
        where = target(settings)
        self.url = where.where
        self.warehouse = Warehouse(where.destination, where.pipelines_dir, load_lock=where.lock, keeper=where.keeper)
        self._loading: set[asyncio.Future[Any]] = set()

    def consumes(self, source: str) -> bool:
        return stream_of(source) == self.stream

    def prepare(self, events: list[StoredEvent]) -> tuple[list[LoadBatch], list[OutcomeRecord]]:
        return ([LoadBatch(list(events))] if events else []), []

    def split(self, batch: LoadBatch) -> list[LoadBatch]:
        half = len(batch.messages) // 2
        return [LoadBatch(batch.messages[:half]), LoadBatch(batch.messages[half:])]

    def _load_once(self, events: list[StoredEvent]) -> None:
        try:
            self._load(events)
        except PipelineStepFailed:
            # dlt kept the failed load pending. Once more, now: the load is finished (a passing
            # fault), or given up and the rows loaded afresh, which are refused if they fail again.
            self._load(events)

    def _load(self, events: list[StoredEvent]) -> None:
        """Load the events not in the warehouse yet, one dataset at a time."""
        by_dataset: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_dataset.setdefault(self.settings.warehouse_dataset_for(event.source), []).append(event)
        for dataset, group in by_dataset.items():
            self.warehouse.loader(dataset).load(group, self._bodies)

    def _bodies(self, events: list[StoredEvent]) -> list[StoredEvent]:
        return self.journal.with_bodies(events, self.stream)

    async def send(self, batch: LoadBatch) -> Outcome:
        # shield: a cancelled worker must not leave a load running unseen; close() waits for it.
        loading = asyncio.ensure_future(asyncio.to_thread(self._load_once, batch.messages))
        self._loading.add(loading)
        loading.add_done_callback(self._finished)
        try:
            await asyncio.shield(loading)
        except LoadRefused as exc:
            if is_transient(exc):  # out of memory, a statement timeout, a connection cut: not the rows
                return Retry(f"warehouse load failed: {describe(exc)}")
            step = "could not build the rows" if exc.local else "the warehouse refused the load"
            return Refused(f"{step}: {cause(exc)}", kind_of(exc), local=exc.local)
        except Exception as exc:  # the warehouse is down or full: the window waits
            return Retry(f"warehouse load failed: {describe(exc)}")
        return Delivered()

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
