"""Loading event tables with dlt: one pipeline (and dataset) per SendGrid source.

Exactly once, with an append-only destination. Every row carries its journal seq
(``_sgbridge_seq``). Before a load, the pipeline finishes any load package that a crash left half
done (dlt resumes the jobs that had not finished). It then asks ``activity`` which seqs of the
window's range are already there, and loads only the others. A window delivered again (after a
crash, or taken over from a dead process, possibly after later windows) is therefore never
appended twice, and never skipped.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.common.exceptions import TerminalException
from dlt.pipeline.exceptions import PipelineStepFailed

from sgbridge.model import StoredEvent
from sgbridge.warehouse.tables import ACTIVITY, tables_for

log = logging.getLogger(__name__)

# dlt adds its load id and row id to Arrow tables only when asked (Python rows always get them).
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID", "true")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # no network at run time


@dataclass
class DatasetLoader:
    """The pipeline of one dataset; ``load`` is blocking (run it in a thread)."""

    pipeline: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    indexed: bool = False

    def _finish_pending(self) -> None:
        """Complete a load package an earlier attempt left (dlt resumes its unfinished jobs).

        Needed before every run: dlt's ``run()`` would load a pending package *instead of* new data.
        """
        if self.pipeline.has_pending_data:
            log.warning("%s: finishing a load interrupted earlier", self.pipeline.pipeline_name)
            self.pipeline.normalize()
            self.pipeline.load()

    def _loaded_seqs(self, low: int, high: int) -> set[int]:
        try:
            with self.pipeline.sql_client() as client:
                table = client.make_qualified_table_name(ACTIVITY)
                rows = client.execute_sql(
                    f"SELECT _sgbridge_seq FROM {table} WHERE _sgbridge_seq BETWEEN {int(low)} AND {int(high)}")
        except DestinationUndefinedEntity:  # no dataset or table yet: nothing loaded
            return set()
        return {int(r[0]) for r in rows or []}

    def _index(self) -> None:
        """PostgreSQL: an index for the check above (DuckDB's zone maps already make it cheap)."""
        if self.indexed or self.pipeline.destination.destination_name != "postgres":
            self.indexed = True
            return
        with self.pipeline.sql_client() as client:
            table = client.make_qualified_table_name(ACTIVITY)
            client.execute_sql(f"CREATE INDEX IF NOT EXISTS activity__sgbridge_seq ON {table} (_sgbridge_seq)")
        self.indexed = True

    def load(self, events: list[StoredEvent]) -> int:
        """Append the events not loaded yet; returns how many were loaded."""
        if not events:
            return 0
        with self.lock:
            self._finish_pending()
            done = self._loaded_seqs(min(e.seq for e in events), max(e.seq for e in events))
            fresh = [e for e in events if e.seq not in done]
            if not fresh:
                return 0
            resources = [dlt.resource(table, name=name, write_disposition="append")
                         for name, table in tables_for(fresh).items()]
            try:
                self.pipeline.run(resources)
            except PipelineStepFailed as exc:
                if isinstance(exc.exception, TerminalException):
                    # This package can never load (a bug, or data dlt refuses): drop it so later loads are
                    # not stuck behind it. Its events stay in the journal and are tried again.
                    log.error("%s: load failed for good, package dropped: %s", self.pipeline.pipeline_name,
                              exc.exception)
                    self.pipeline.drop_pending_packages()
                raise
            if self.pipeline.has_pending_data:  # run() did not load everything: the window is retried
                raise RuntimeError(f"{self.pipeline.pipeline_name}: the load did not complete")
            self._index()
            return len(fresh)


class Warehouse:
    """Datasets by name, each with its pipeline, for one dlt destination."""

    def __init__(self, destination: Destination[Any, Any], pipelines_dir: Path, pipeline_prefix: str = "sgbridge"):
        self.destination = destination
        self.pipelines_dir = pipelines_dir
        self.prefix = pipeline_prefix
        self._loaders: dict[str, DatasetLoader] = {}

    def loader(self, dataset: str) -> DatasetLoader:
        if dataset not in self._loaders:
            pipeline = dlt.pipeline(pipeline_name=f"{self.prefix}_{dataset}", destination=self.destination,
                                    dataset_name=dataset, pipelines_dir=str(self.pipelines_dir))
            self._loaders[dataset] = DatasetLoader(pipeline)
        return self._loaders[dataset]
