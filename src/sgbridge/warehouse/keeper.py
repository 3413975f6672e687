"""Keep a DuckDB file open while loads follow each other, and let it go when they stop.

dlt opens and closes its DuckDB connection for every load job (a dozen per event load: one per
table). Closing the last connection to a file shuts the database down, which checkpoints it: that
was as much time as the inserts themselves. While one connection stays open in this process, dlt's
connections share the same database instance and closing them costs nothing. So a load holds the
file open, and the file is closed ``idle_seconds`` after the last load: under a backlog it stays
open, and between micro-batches other processes can open it (to query it, or ``sgbridge sync``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

_KEEPERS: dict[str, DuckDBKeeper] = {}
_KEEPERS_GUARD = threading.Lock()


class DuckDBKeeper:
    def __init__(self, path: str, idle_seconds: float = 2.0) -> None:
        self.path = path
        self.idle_seconds = idle_seconds
        self._conn: Any = None
        self._holders = 0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> DuckDBKeeper:
        self.hold()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def hold(self) -> None:
        import duckdb

        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._conn is None:
                try:
                    self._conn = duckdb.connect(self.path)
                except duckdb.Error as exc:  # another process has the file: dlt's own connect will say so
                    log.debug("could not keep %s open: %s", self.path, exc)
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0 and self._conn is not None:
                self._timer = threading.Timer(self.idle_seconds, self._close_if_idle)
                self._timer.daemon = True
                self._timer.start()

    def _close_if_idle(self) -> None:
        with self._lock:
            if self._holders == 0 and self._conn is not None:
                self._conn.close()  # the last connection: DuckDB checkpoints the file here, once
                self._conn = None
            self._timer = None

    def close(self, only_if_idle: bool = False) -> None:
        """Close the file now (at shutdown; ``only_if_idle``: unless a load holds it)."""
        with self._lock:
            if only_if_idle and self._holders:
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def duckdb_keeper(path: str) -> DuckDBKeeper:
    """The keeper of one DuckDB file, shared by everything in this process that loads into it."""
    with _KEEPERS_GUARD:
        keeper = _KEEPERS.get(path)
        if keeper is None:
            keeper = _KEEPERS[path] = DuckDBKeeper(path)
        return keeper
