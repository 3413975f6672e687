"""One object sync of one SendGrid account into its warehouse dataset.

Each collection is its own dlt load (extract, normalize, load), so one collection that fails or
that the key may not read never costs the others their data. A run:

1. finishes a load an interrupted run left behind (dlt keeps the package on disk) — before new
   data, so an old package can never overwrite newer rows;
2. reads the collection page by page into dlt (merge on the primary key);
3. for snapshot collections, after a complete load, deletes rows of objects that are gone.

A 401 stops the run ("Invalid credentials"). A 403 means the key lacks the scope or the account
lacks Marketing Campaigns: the collection reports "zero data synced", as Segment's source does.
Blocking: run it in a thread. ``cancel`` stops it between pages.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dlt
import pyarrow as pa

from sgbridge.settings import Settings
from sgbridge.sync.api import AccessDenied, Cancelled, InvalidCredentials, SyncApi
from sgbridge.sync.collections import COLLECTIONS, RUN_COLUMN, Collection, Context, Pages
from sgbridge.warehouse.loader import finish_interrupted_load
from sgbridge.warehouse.location import target

log = logging.getLogger(__name__)

SYNCED, ZERO, FAILED, INTERRUPTED, PENDING, RUNNING = (
    "synced", "zero data synced", "failed", "interrupted", "pending", "running")


@dataclass
class CollectionResult:
    name: str
    status: str = PENDING
    rows: int = 0
    total: int | None = None  # when the API says how many are coming (the contacts export does)
    seconds: float = 0.0
    note: str = ""
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"collection": self.name, "status": self.status, "rows": self.rows,
                                "seconds": round(self.seconds, 3)}
        if self.note:
            data["note"] = self.note
        if self.error:
            data["error"] = self.error
        return data


@dataclass
class SyncReport:
    source: str
    dataset: str
    run_id: str
    collections: list[CollectionResult] = field(default_factory=list)
    error: str | None = None  # what stopped the whole run (invalid credentials, shutdown)
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def status(self) -> str:
        """ok: every collection synced (or had nothing to sync); partial: some failed; failed."""
        if self.error is not None and not any(c.status in (SYNCED, ZERO) for c in self.collections):
            return INTERRUPTED if any(c.status == INTERRUPTED for c in self.collections) else FAILED
        if self.error is not None or any(c.status in (FAILED, INTERRUPTED) for c in self.collections):
            return "partial"
        return "ok"

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "dataset": self.dataset, "status": self.status, "error": self.error,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "collections": [c.as_json() for c in self.collections]}


Observer = Callable[[CollectionResult], None]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The error and those under it: dlt wraps what a reader or a database raised
    (PipelineStepFailed → extraction or load error → ...)."""
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return
        yield current
        inner = getattr(current, "exception", None)
        current = inner if isinstance(inner, BaseException) else (current.__cause__ or current.__context__)


def _cause(exc: BaseException) -> BaseException:
    """The error a user acts on: a known one if dlt wrapped one, else the innermost (dlt's outer
    messages are pages of advice around it)."""
    chain = list(_chain(exc))
    known = (InvalidCredentials, AccessDenied, Cancelled)
    return next((e for e in chain if isinstance(e, known)), chain[-1])


def _is_file_lock(exc: BaseException) -> bool:
    return any("Could not set lock on file" in str(e) for e in _chain(exc))


class ObjectSync:
    """Syncs one source's collections; ``run`` may be called more than once."""

    def __init__(self, settings: Settings, source: str, *, cancel: threading.Event | None = None,
                 observer: Observer | None = None, api: SyncApi | None = None) -> None:
        if source not in settings.sources:
            raise ValueError(f"unknown source {source!r}; configured: {', '.join(settings.sources)}")
        config = settings.sources[source]
        if config.api_key is None and api is None:
            raise ValueError(f"source {source!r} has no api_key (SENDGRID_API_KEY for the default source)")
        self.settings = settings
        self.source = source
        self.dataset = settings.warehouse_dataset_for(source)
        self.cancel = cancel or threading.Event()
        self.observer = observer
        sync = settings.sync
        self.api = api or SyncApi(config.api_key.get_secret_value() if config.api_key else "", config.api_base_url(),
                                  timeout_seconds=sync.request_timeout_seconds, max_attempts=sync.max_attempts,
                                  cancel=self.cancel)
        where = target(settings)
        self.pipeline = dlt.pipeline(pipeline_name=f"sgbridge_{self.dataset}_objects", destination=where.destination,
                                     dataset_name=self.dataset, pipelines_dir=str(where.pipelines_dir))
        self.lock = where.lock
        self.keeper = where.keeper

    def close(self) -> None:
        self.api.close()
        if self.keeper is not None:  # let other processes (a query, `serve`) have the file at once
            self.keeper.close(only_if_idle=True)

    def run(self, collections: Sequence[str] | None = None, full_refresh: bool = False,
            run_id: str | None = None) -> SyncReport:
        names = list(collections or self.settings.sync.collections)
        unknown = [n for n in names if n not in COLLECTIONS]
        if unknown:
            raise ValueError(f"unknown collections {unknown}; choose from {list(COLLECTIONS)}")
        report = SyncReport(self.source, self.dataset, run_id or uuid.uuid4().hex)
        report.collections = [CollectionResult(name) for name in names]
        for result in report.collections:
            if report.error is not None:
                result.status = INTERRUPTED if self.cancel.is_set() else FAILED
                result.error = report.error
                self._tell(result)
                continue
            self._sync_one(COLLECTIONS[result.name], result, report, full_refresh)
        report.finished_at = time.time()
        return report

    def _tell(self, result: CollectionResult) -> None:
        if self.observer is not None:
            self.observer(result)

    def _sync_one(self, collection: Collection, result: CollectionResult, report: SyncReport,
                  full_refresh: bool) -> None:
        started = time.monotonic()
        result.status = RUNNING
        self._tell(result)
        try:
            self._while_locked(self._finish_pending)
            self._while_locked(lambda: self._extract_and_load(collection, result, report.run_id, full_refresh))
            if collection.incremental is None or full_refresh:
                self._while_locked(lambda: self._delete_missing(collection, report.run_id))
            result.status = SYNCED if result.rows else ZERO
            result.note = ""
        except BaseException as exc:  # classified and recorded; KeyboardInterrupt is re-raised below
            cause = _cause(exc)
            if isinstance(cause, InvalidCredentials):
                result.status, result.error = FAILED, f"Invalid credentials: {cause}"
                report.error = result.error
            elif isinstance(cause, AccessDenied):
                result.status, result.rows = ZERO, 0
                result.note = ("access forbidden: the API key lacks the scope "
                               f"({' or '.join(collection.scopes)})"
                               + (" or the account has no Marketing Campaigns" if collection.marketing else ""))
            elif isinstance(cause, Cancelled) or self.cancel.is_set():
                result.status, result.error = INTERRUPTED, "stopped before the end (the process is shutting down)"
                report.error = result.error
            else:
                result.status, result.error = FAILED, f"{type(cause).__name__}: {cause}"[:2000]
                log.warning("sync %s/%s failed: %s", self.source, collection.name, result.error)
            if not isinstance(exc, Exception):
                raise
        finally:
            result.seconds = time.monotonic() - started
            self._tell(result)

    def _while_locked(self, step: Callable[[], None]) -> None:
        """Run ``step``, again while another process holds the DuckDB file (``serve`` loading events
        while ``sgbridge sync`` runs from a shell): DuckDB lets one process write a file."""
        deadline = time.monotonic() + self.settings.sync.lock_wait_seconds
        delay = 0.2
        while True:
            try:
                step()
                return
            except Exception as exc:
                if not _is_file_lock(exc) or time.monotonic() + delay > deadline:
                    raise
                log.info("%s: the warehouse file is busy (another process); waiting", self.pipeline.pipeline_name)
            if self.cancel.wait(delay):
                raise Cancelled("stopping")
            delay = min(delay * 2, 5.0)

    def _finish_pending(self) -> None:
        with self.keeper or contextlib.nullcontext(), self.lock:
            finish_interrupted_load(self.pipeline)

    def _extract_and_load(self, collection: Collection, result: CollectionResult, run_id: str,
                          full_refresh: bool) -> None:
        ctx = Context(self.api, run_id, self.settings.sync.export_timeout_seconds,
                      self.settings.sync.export_poll_seconds,
                      on_total=lambda total: self._set_total(result, total),
                      on_note=lambda note: self._set_note(result, note))
        resource = self._resource(collection, ctx, result)
        # A full refresh of an incremental list empties it and forgets its cursor, in the same load.
        self.pipeline.extract(resource, refresh="drop_data" if full_refresh and collection.incremental else None)
        result.note = "loading"
        self._tell(result)
        with self.keeper or contextlib.nullcontext(), self.lock:  # writes take turns with the event loads
            normalized = self.pipeline.normalize()
            self.pipeline.load()
        # What was loaded, after dlt's incremental filter (the live count was of rows read).
        result.rows = int(normalized.row_counts.get(collection.name, 0))

    def _set_total(self, result: CollectionResult, total: int) -> None:
        result.total = total
        self._tell(result)

    def _set_note(self, result: CollectionResult, note: str) -> None:
        result.note = note
        self._tell(result)

    def _resource(self, collection: Collection, ctx: Context, result: CollectionResult) -> Any:
        def count(item: Any) -> Any:
            if self.cancel.is_set():  # between pages: a stopping process does not wait for a whole export
                raise Cancelled("stopping")
            result.rows += item.num_rows if isinstance(item, pa.Table) else 1
            self._tell(result)
            return item

        hints: dict[str, Any] = {"name": collection.name, "write_disposition": "merge",
                                 "primary_key": list(collection.primary_key), "max_table_nesting": 0}
        if collection.incremental:
            cursor = collection.incremental

            # dlt's idiom: the cursor is a default argument, which dlt replaces with the saved state.
            def incremental_rows(
                    created: Any = dlt.sources.incremental(cursor, initial_value=0),  # noqa: B008
            ) -> Pages:
                yield from collection.read(ctx, int(created.start_value or 0))

            return dlt.resource(incremental_rows, **hints).add_map(count)
        return dlt.resource(collection.read(ctx, None), **hints).add_map(count)

    def _delete_missing(self, collection: Collection, run_id: str) -> None:
        """A snapshot was loaded whole: rows it did not touch are objects deleted in SendGrid."""
        with self.keeper or contextlib.nullcontext(), self.lock, self.pipeline.sql_client() as client:
            table = client.make_qualified_table_name(collection.name)
            try:
                with client.begin_transaction():
                    client.execute_sql(f"DELETE FROM {table} WHERE {RUN_COLUMN} IS NULL OR {RUN_COLUMN} <> %s",
                                       run_id)
            except Exception as exc:  # no table yet: nothing was ever loaded, nothing to delete
                if "exist" not in str(exc).lower() and "not found" not in str(exc).lower():
                    raise
