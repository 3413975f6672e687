"""SendGrid events → the warehouse, as one more destination of the delivery engine.

Each window of the journal becomes one dlt load per source dataset (per-type tables plus
``activity``). An unavailable warehouse is a ``Retry``: the window waits and nothing is lost.
Loads run in a worker thread so ingestion keeps its event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sgbridge.inbound.segment import SEGMENT_SOURCES
from sgbridge.model import OutcomeRecord, StoredEvent
from sgbridge.outcomes import Delivered, Outcome, Retry
from sgbridge.settings import Settings
from sgbridge.warehouse.loader import Warehouse
from sgbridge.warehouse.location import target

NAME = "warehouse"


@dataclass(slots=True)
class LoadBatch:
    messages: list[StoredEvent]


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

    def _load(self, events: list[StoredEvent]) -> None:
        by_dataset: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_dataset.setdefault(self.settings.warehouse_dataset_for(event.source), []).append(event)
        for dataset, group in by_dataset.items():
            self.warehouse.loader(dataset).load(group)

    async def send(self, batch: LoadBatch) -> Outcome:
        # shield: a cancelled worker must not leave a load running unseen; close() waits for it.
        loading = asyncio.ensure_future(asyncio.to_thread(self._load, batch.messages))
        self._loading.add(loading)
        loading.add_done_callback(self._loading.discard)
        try:
            await asyncio.shield(loading)
        except Exception as exc:  # the warehouse is down, full, or refused: the window waits
            return Retry(f"warehouse load failed: {type(exc).__name__}: {str(exc)[:300]}")
        return Delivered()

    async def close(self) -> None:
        """Wait for loads still running in their threads (at shutdown)."""
        if self._loading:
            await asyncio.wait(set(self._loading))
        if self.warehouse.keeper is not None:
            self.warehouse.keeper.close()
