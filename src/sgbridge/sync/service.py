"""Object syncs as operators see them: recorded runs, and the schedule that `serve` keeps.

Every run, scheduled or asked for with ``sgbridge sync``, is a row in the journal's run history
with its per-collection progress, written as it goes. The schedule gives each interval a slot
(``floor(now / interval)``); the process that claims the slot first runs that sync, so several
``serve`` processes on one PostgreSQL database run it once. A fresh start runs the current slot
at once if nobody has, so a new installation fills its tables without waiting three hours.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from sgbridge.journal import Journal
from sgbridge.journal.sync_runs import SyncRuns
from sgbridge.settings import Settings
from sgbridge.sync.api import SyncApi
from sgbridge.sync.runner import CollectionResult, ObjectSync, Observer, SyncReport

log = logging.getLogger(__name__)
BEAT_SECONDS = 2.0  # progress written at most this often (and at every collection's end)
SHUTDOWN_WAIT_SECONDS = 30.0


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_recorded(settings: Settings, journal: Journal, source: str, *, slot: int | None = None,
                 collections: Sequence[str] | None = None, full_refresh: bool = False,
                 cancel: threading.Event | None = None, observer: Observer | None = None,
                 api: SyncApi | None = None) -> SyncReport | None:
    """Run one sync and keep its record; None when the slot was already taken."""
    stale_after = settings.sync.stale_after_seconds
    runs = SyncRuns(journal, stale_after)
    run_id = runs.start(source, owner_name(), slot)
    if run_id is None:
        return None
    results: dict[str, CollectionResult] = {}
    lock = threading.Lock()
    last_beat = 0.0

    done = threading.Event()

    def beat(force: bool = False) -> None:
        nonlocal last_beat
        with lock:
            if done.is_set():  # the run's final record is written: a late beat must not overwrite it
                return
            now = time.monotonic()
            if force or now - last_beat >= BEAT_SECONDS:
                last_beat = now
                runs.beat(run_id, [r.as_json() for r in results.values()])

    notes: dict[str, str] = {}

    def progress(result: CollectionResult) -> None:
        results[result.name] = result
        # Row counts are written every few seconds; a new stage (export ready, loading, done) at once.
        stage_changed = notes.get(result.name) != result.note or result.status not in ("running", "pending")
        notes[result.name] = result.note
        beat(force=stage_changed)
        if observer is not None:
            observer(result)

    def stop_beating() -> None:
        with lock:
            done.set()

    # Beats also while one step runs long (a large merge, a wait for the warehouse file), so other
    # processes never take a live run for a dead one.
    pulse = threading.Thread(target=_pulse, args=(done, stale_after / 4, beat), daemon=True)
    pulse.start()
    try:
        sync = ObjectSync(settings, source, cancel=cancel, observer=progress, api=api)
        try:
            report = sync.run(collections, full_refresh)
        finally:
            sync.close()
    except BaseException as exc:
        stop_beating()
        runs.finish(run_id, "failed", [r.as_json() for r in results.values()], f"{type(exc).__name__}: {exc}")
        raise
    stop_beating()
    runs.finish(run_id, report.status, [c.as_json() for c in report.collections], report.error)
    log.info("sync %s: %s (%s)", source, report.status,
             ", ".join(f"{c.name} {c.rows}" for c in report.collections))
    return report


def _pulse(done: threading.Event, every: float, beat: Any) -> None:
    while not done.wait(every):
        try:
            beat(force=True)
        except Exception:  # the journal is closing; the run's own end is recorded elsewhere
            log.debug("sync heartbeat failed", exc_info=True)


class SyncScheduler:
    """The periodic sync of every source with an API key, inside `serve`."""

    def __init__(self, settings: Settings, journal: Journal) -> None:
        self.settings = settings
        self.journal = journal
        self.cancel = threading.Event()
        self._running: asyncio.Future[Any] | None = None
        self._done: set[tuple[str, int]] = set()

    def slot(self, now: float | None = None) -> int:
        return int((time.time() if now is None else now) // self.settings.sync.interval_seconds)

    async def run(self) -> None:
        interval = self.settings.sync.interval_seconds
        while not self.cancel.is_set():
            for source in self.settings.sync_sources():
                slot = self.slot()
                if (source, slot) in self._done or self.cancel.is_set():
                    continue
                self._running = asyncio.ensure_future(asyncio.to_thread(
                    run_recorded, self.settings, self.journal, source, slot=slot, cancel=self.cancel))
                try:
                    ran = await asyncio.shield(self._running) is not None
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("sync of %s failed", source)
                    ran = True  # recorded as failed; the next slot tries again
                if ran:
                    self._done.add((source, slot))
                # Not run: another process holds the slot. Asking again is one failed insert, and takes
                # the slot over if that process dies mid-run.
            next_slot_at = (self.slot() + 1) * interval
            wait = min(60.0, self.settings.sync.stale_after_seconds, next_slot_at - time.time())
            await asyncio.sleep(max(1.0, wait))

    async def close(self) -> None:
        """Stop between pages; the run is recorded as interrupted. Waits for its thread."""
        self.cancel.set()
        if self._running is not None and not self._running.done():
            await asyncio.wait([self._running], timeout=SHUTDOWN_WAIT_SECONDS)
