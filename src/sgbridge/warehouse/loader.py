"""Loading event tables with dlt: one pipeline (and dataset) per SendGrid source.

Exactly once, with an append-only destination. Every row carries its journal seq
(``_sgbridge_seq``). Before a load, the pipeline finishes any load package that a crash left half
done (dlt resumes the jobs that had not finished). It then asks ``activity`` which seqs of the
window's range are already there, and loads only the others. A window delivered again (after a
crash, or taken over from a dead process, possibly after later windows) is therefore never
appended twice, and never skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.destination import Destination
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.common.exceptions import TerminalException
from dlt.pipeline.exceptions import PipelineStepFailed

from sgbridge.model import StoredEvent
from sgbridge.warehouse.abandon import (
    abandon,
    extract_folders,
    forget_abandoned,
    remove_failed_extracts,
    under_way_when_stopped,
)
from sgbridge.warehouse.keeper import DuckDBKeeper
from sgbridge.warehouse.tables import ACTIVITY, TABLES, tables_for

log = logging.getLogger(__name__)
Filler = Callable[[list[StoredEvent]], list[StoredEvent]]  # events → the same events with their bodies
# Events turned into Arrow tables at once. dlt writes a window's chunks of a table into one file,
# so DuckDB still gets inserts of whole row groups (122,880 rows; smaller inserts go through its
# WAL and are written again at the checkpoint); the chunk only bounds the Python lists and Arrow
# buffers alive at once. With 32,768 (and the journal's smaller page cache and single read of a
# window, in the same change) the warehouse process's peak on a 400,000-event backlog went from
# ~1,000 to ~750 MB, in the same time (docs/benchmarks.md).
CHUNK_EVENTS = 32_768
# Arrow's buffers come from the C library's allocator, not the bundled mimalloc: mimalloc kept the
# segments of every load, so the process stayed at its peak between loads; freed glibc memory is
# handed back after each load (``_give_back_freed_memory``).
pa.set_memory_pool(pa.system_memory_pool())


def _libc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None elsewhere, e.g. musl or macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_malloc_trim()


def _give_back_freed_memory() -> None:
    """After a load, return the heap's free pages to the OS. A window's rows, its Python lists and
    Arrow buffers are freed by then, but glibc keeps most of that memory in its arenas (one per
    thread that allocated), so each load's peak stayed in the process's RSS."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class LoadRefused(Exception):
    """The warehouse answered and refused this load; loading the same rows again will not help.
    Nothing of it is left pending or loaded (see ``DatasetLoader._abandon``). ``local``: the rows
    could not be built or written to dlt's files (extract, normalize); the warehouse had no part."""

    def __init__(self, message: str, local: bool = False) -> None:
        super().__init__(message)
        self.local = local


def finish_interrupted_load(pipeline: Any) -> None:
    """Complete a load package an earlier attempt left (dlt resumes its unfinished jobs).

    Needed before every run: dlt's ``run()`` would load a pending package *instead of* new data,
    and a package loaded after newer data would overwrite it.
    """
    if pipeline.has_pending_data:
        log.warning("%s: finishing a load interrupted earlier", pipeline.pipeline_name)
        pipeline.normalize()
        pipeline.load()


@dataclass
class DatasetLoader:
    """The pipeline of one dataset; ``load`` is blocking (run it in a thread)."""

    pipeline: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    keeper: DuckDBKeeper | None = None
    indexed: bool = False

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

    def load(self, events: list[StoredEvent], bodies: Filler = list) -> int:
        """Append the events not loaded yet; returns how many were loaded.

        ``bodies``: the events of a chunk with their bodies, for events given without them (a window
        claimed so: ``Journal.with_bodies``); called a chunk at a time, so that only a chunk's bodies
        are in memory, not the window's."""
        if not events:
            return 0
        try:
            return self._load(events, bodies)
        finally:
            _give_back_freed_memory()

    def _load(self, events: list[StoredEvent], bodies: Filler) -> int:
        with self.keeper or contextlib.nullcontext(), self.lock:
            forget_abandoned(self.pipeline)  # an earlier give-up that did not finish
            gave_up = self._finish_or_abandon()
            done = self._loaded_seqs(min(e.seq for e in events), max(e.seq for e in events))
            fresh = sum(1 for e in events if e.seq not in done)
            if not fresh:
                return 0
            try:
                self._run(_window_tables(events, done, self._columns_in_use, bodies))
            except PipelineStepFailed as exc:
                # Refused: the rows could not be built or written (extract and normalize are local
                # steps, the warehouse plays no part), or the load failed as the one given up above
                # did (usually the same window, tried again), while the warehouse answers.
                if exc.step not in ("extract", "normalize") and not gave_up:
                    raise
                self._abandon()
                raise LoadRefused(f"{exc.step}: {exc.exception}", local=exc.step in ("extract", "normalize")) from exc
            self._index()
            return fresh

    def _columns_in_use(self) -> set[str]:
        """The columns ``activity`` has (dlt's schema, which ``run`` has synced with the warehouse)."""
        if not self.pipeline.default_schema_name:
            return set()
        table = self.pipeline.default_schema.tables.get(ACTIVITY)
        return set(table["columns"]) if table else set()

    def _finish_or_abandon(self) -> bool:
        """Finish the load package an earlier attempt left (after a crash, or a failed load); if it
        fails again, give it up (``_abandon``) rather than let it stop every later load: one refused
        value did that, for good, while dlt called the error transient. True if it was given up
        because it failed again.

        A load that was under way when the process stopped (kill -9) is given up rather than
        finished: dlt would run its interrupted job again, and that job's rows could be in already
        (seen: a per-type table with a window's rows twice)."""
        if under_way_when_stopped(self.pipeline):
            log.warning("%s: a load was under way when the process stopped; it is given up and its "
                        "events loaded afresh", self.pipeline.pipeline_name)
            self._abandon()
            return False
        try:
            finish_interrupted_load(self.pipeline)
        except Exception as exc:
            log.error("%s: an unfinished load failed again and is given up; its events are loaded again "
                      "from the journal: %s", self.pipeline.pipeline_name, exc)
            self._abandon()
            return True
        return False

    def _abandon(self) -> None:
        """Give up the pending load packages, and the rows their finished jobs appended (see
        abandon.py). Raises if the warehouse does not answer (the window waits)."""
        abandon(self.pipeline, TABLES)

    def _run(self, tables: Iterator[Any]) -> None:
        """One dlt load (extract, normalize, load) of the window's tables."""
        rows = dlt.resource(tables, name=ACTIVITY, write_disposition="append")
        folders = extract_folders(self.pipeline)
        try:
            self.pipeline.run(rows)
        except PipelineStepFailed as exc:
            if exc.step == "extract":
                remove_failed_extracts(self.pipeline, folders)
            if isinstance(exc.exception, TerminalException):
                # This package can never load (data dlt or the warehouse refuses, or a table changed
                # under it): give it up now. Its events stay in the journal and are tried again.
                log.error("%s: load refused, given up: %s", self.pipeline.pipeline_name, exc.exception)
                self._abandon()
                raise LoadRefused(str(exc.exception)) from exc
            raise
        if self.pipeline.has_pending_data:  # run() did not load everything: the window is retried
            raise RuntimeError(f"{self.pipeline.pipeline_name}: the load did not complete")


def _window_tables(events: list[StoredEvent], done: set[int], columns: Callable[[], set[str]],
                   bodies: Filler = list) -> Iterator[Any]:
    """The window's rows, built a chunk at a time, each table marked with its name.

    One load for the whole window (dlt's fixed cost per load is paid once, and DuckDB's inserts are
    large), but Arrow tables for only two chunks at a time in memory: while dlt writes a chunk to its
    files, the next one is built in another thread (chunks one after the other: each adds to the
    columns in use).

    ``columns``: the columns ``activity`` has, asked when dlt starts extracting (after it has
    synced its schema with the warehouse). ``bodies``: a chunk's events with their bodies (read
    in the builder's thread, for the chunk only).
    """
    loaded = pa.array(sorted(done), pa.int64()) if done else None
    in_use = columns()
    chunks = [events[start:start + CHUNK_EVENTS] for start in range(0, len(events), CHUNK_EVENTS)]
    with ThreadPoolExecutor(1, thread_name_prefix="warehouse-rows") as builder:
        ahead = builder.submit(_chunk_tables, chunks[0], loaded, in_use, bodies)
        for following in [*chunks[1:], None]:
            tables = ahead.result()
            if following is not None:
                ahead = builder.submit(_chunk_tables, following, loaded, in_use, bodies)
            while tables:  # each table let go of once dlt has written it
                name, table = tables.pop()
                yield dlt.mark.with_table_name(table, name)
                del table


def _chunk_tables(events: list[StoredEvent], loaded: pa.Array | None, in_use: set[str],
                  bodies: Filler = list) -> list[tuple[str, pa.Table]]:
    """A chunk's tables by name, without the rows of events already in the warehouse (a window
    loaded again after a crash)."""
    out = []
    for name, table in tables_for(bodies(events), in_use).items():
        if loaded is not None:
            table = table.filter(pc.invert(pc.is_in(table["_sgbridge_seq"], value_set=loaded)))
        if table.num_rows:
            out.append((name, table))
    return out


class Warehouse:
    """Datasets by name, each with its pipeline, for one dlt destination."""

    def __init__(self, destination: Destination[Any, Any], pipelines_dir: Path, pipeline_prefix: str = "sgbridge",
                 load_lock: threading.Lock | None = None, keeper: DuckDBKeeper | None = None):
        self.destination = destination
        self.load_lock = load_lock or threading.Lock()  # shared with the object sync of the same warehouse
        self.keeper = keeper
        self.pipelines_dir = pipelines_dir
        self.prefix = pipeline_prefix
        self._loaders: dict[str, DatasetLoader] = {}

    def loader(self, dataset: str) -> DatasetLoader:
        if dataset not in self._loaders:
            name = f"{self.prefix}_{dataset}"
            # A failed load job is retried by sgbridge: the next load finishes the pending load, or
            # gives it up and loads the rows afresh, and the window itself is retried with backoff.
            # dlt's own retries within a load (5, a second or more apart) made each refused load take
            # several seconds, and the search for an event the warehouse refuses take minutes. Set
            # for these pipelines only (dlt reads settings by pipeline name): the object sync keeps them.
            os.environ.setdefault(f"{name.upper()}__LOAD__RAISE_ON_MAX_RETRIES", "1")
            pipeline = dlt.pipeline(pipeline_name=name, destination=self.destination,
                                    dataset_name=dataset, pipelines_dir=str(self.pipelines_dir))
            self._loaders[dataset] = DatasetLoader(pipeline, self.load_lock, self.keeper)
        return self._loaders[dataset]
