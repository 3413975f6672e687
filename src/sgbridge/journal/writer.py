"""One writer thread per process: every write goes through it, in group commits.

SQLite allows one writer at a time, and a commit with ``synchronous=FULL`` costs an fsync
(≈3,400/s here), so jobs that queue up while a commit is running are run together in the
next transaction: one fsync for many webhook requests. Each job runs under a savepoint, so
one failing job does not undo the others. PostgreSQL uses the same path.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sgbridge.journal.dialect import Dialect

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_JOBS_PER_COMMIT = 512


@dataclass(slots=True)
class _Job:
    fn: Callable[[Any], Any]
    appends: bool
    durable: bool = False
    future: Future[Any] = field(default_factory=Future)


class Writer:
    """``relaxed``: commits do not wait for the disk unless a job of the group asks (``durable``).

    The delivery processes record progress (claims, cursors, outcomes, attempts) that a power
    loss may undo without harm: the work is redone, and redone deliveries are removed by ids.
    Not waiting for the disk keeps their commits from holding SQLite's one write lock, which
    the ingest process needs, for the length of an fsync.
    """

    def __init__(self, dialect: Dialect, relaxed: bool = False) -> None:
        self._dialect = dialect
        self._relaxed = relaxed
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._conn: Any = self._connect()  # None after a failure, until the next group connects again
        self._thread = threading.Thread(target=self._run, name="sgbridge-journal-writer", daemon=True)
        self._closed = False
        self.commits = 0
        self._thread.start()

    def _connect(self) -> Any:
        conn = self._dialect.connect()
        if self._relaxed:
            self._dialect.set_durable(conn, False)
        return conn

    def submit(self, fn: Callable[[Any], T], *, appends: bool = False, durable: bool = False) -> Future[T]:
        if self._closed:
            raise RuntimeError("journal is closed")
        job = _Job(fn, appends, durable)
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
            if self._conn is not None:
                self._conn.close()

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            while len(jobs) < MAX_JOBS_PER_COMMIT:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            # Appends first: on PostgreSQL the append lock must be the first lock taken, so two
            # processes can never wait on each other (see PostgresDialect.begin).
            jobs.sort(key=lambda j: not j.appends)
            # A job whose caller gave up (its request was cancelled) is not run: nothing was
            # acknowledged for it, so nothing is lost.
            jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            if jobs:
                try:
                    self._run_group(jobs)
                except BaseException as exc:  # never leave a caller waiting, whatever went wrong
                    log.exception("journal writer failed; %d jobs fail with it", len(jobs))
                    for job in jobs:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    self._reconnect()

    def _run_group(self, jobs: list[_Job]) -> None:
        if self._conn is None:  # the last one broke: connect again (the database may be back)
            try:
                self._conn = self._connect()
            except Exception as exc:
                log.error("journal unavailable, %d jobs fail: %s", len(jobs), exc)
                for job in jobs:
                    job.future.set_exception(exc)
                return
        conn = self._conn
        results: list[tuple[_Job, Any, BaseException | None]] = []
        durable = self._relaxed and any(job.durable for job in jobs)
        try:
            if durable:
                self._dialect.set_durable(conn, True)
            self._dialect.begin(conn, with_append_lock=jobs[0].appends)
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    value = job.fn(conn)
                except Exception as exc:  # the job's caller gets the exception
                    conn.execute("ROLLBACK TO SAVEPOINT job")
                    results.append((job, None, exc))
                else:
                    results.append((job, value, None))
                conn.execute("RELEASE SAVEPOINT job")
            conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:
            log.exception("journal commit failed; %d jobs fail with it", len(jobs))
            try:
                conn.execute("ROLLBACK")
            except Exception:
                log.exception("rollback failed; reconnecting")
                self._reconnect()
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        finally:
            if durable and self._conn is not None:  # back to commits that do not wait for the disk
                with contextlib.suppress(Exception):
                    self._dialect.set_durable(self._conn, False)
        for job, value, error in results:
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(value)

    def _reconnect(self) -> None:
        """Drop a broken connection; the next group opens a new one (a failed connect must not end
        the writer thread: every later job would then wait for ever)."""
        try:
            if self._conn is not None:
                self._conn.close()
        except Exception:
            log.debug("closing a broken connection failed", exc_info=True)
        self._conn = None
