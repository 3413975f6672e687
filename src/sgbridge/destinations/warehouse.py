"""SendGrid events → the warehouse, as one more destination of the delivery engine.

Each window of the journal becomes one dlt load per source dataset (per-type tables plus
``activity``). An unavailable warehouse is a ``Retry``: the window waits and nothing is lost.
Loads run in a worker thread so ingestion keeps its event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt

from sgbridge.inbound.segment import SEGMENT_SOURCES
from sgbridge.model import OutcomeRecord, StoredEvent
from sgbridge.outcomes import Delivered, Outcome, Retry
from sgbridge.settings import Settings, WarehouseSettings
from sgbridge.warehouse.loader import Warehouse

NAME = "warehouse"


@dataclass(slots=True)
class LoadBatch:
    messages: list[StoredEvent]


def default_location(settings: Settings) -> Path:
    """Beside the SQLite journal (or in the working directory for a PostgreSQL journal)."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).resolve().parent
    return Path.cwd()


def dlt_destination(config: WarehouseSettings, home: Path) -> Any:
    credentials = config.credentials.get_secret_value() if config.credentials else None
    if config.destination == "duckdb":
        return dlt.destinations.duckdb(credentials or str(home / "sgbridge.duckdb"))
    if credentials is not None:
        return dlt.destination(config.destination, credentials=credentials)
    return dlt.destination(config.destination)  # credentials from dlt's own configuration


def describe(config: WarehouseSettings, home: Path) -> str:
    """Where the data goes, for logs and the attempt log (never the credentials)."""
    if config.destination == "duckdb":
        path = config.credentials.get_secret_value() if config.credentials else str(home / "sgbridge.duckdb")
        return f"duckdb:{path}"
    return config.destination


class WarehouseDestination:
    name = NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        home = default_location(settings)
        config = settings.warehouse
        pipelines = Path(config.pipelines_dir) if config.pipelines_dir else home / "sgbridge-dlt"
        self.warehouse = Warehouse(dlt_destination(config, home), pipelines)
        self.url = describe(config, home)
        self._loading: asyncio.Task[Any] | None = None

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
        self._loading = asyncio.ensure_future(asyncio.to_thread(self._load, batch.messages))
        try:
            await asyncio.shield(self._loading)
        except Exception as exc:  # the warehouse is down, full, or refused: the window waits
            return Retry(f"warehouse load failed: {type(exc).__name__}: {str(exc)[:300]}")
        return Delivered()

    async def close(self) -> None:
        """Wait for a load still running in its thread (at shutdown)."""
        if self._loading is not None and not self._loading.done():
            await asyncio.wait([self._loading])
