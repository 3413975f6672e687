"""On SQLite, one process at a time delivers to each destination: a lock file per destination.

SQLite is one machine, so a process that starts delivering to a destination may release the
claims an earlier run left (``Journal.release_claims``) at once instead of after their lease.
That is only safe once the earlier process is gone: after ``kill -9`` of the supervisor, its
orphaned deliver process still finishes the windows it has (up to the stop timeout), and a new
``serve`` started meanwhile sent the same windows again. Each process that runs a destination
holds an exclusive ``flock`` on ``<database>.<destination>.lock``; the kernel lets go of it when the
process ends, however it ends. A process that finds a lock taken waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2


def lock_path(database: str, destination: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", destination)
    return Path(f"{database}.{safe}.lock")


class DestinationLocks:
    """The locks of the destinations this process delivers to; ``close`` lets go of them."""

    def __init__(self) -> None:
        self._files: dict[str, int] = {}

    def _try(self, database: str, destination: str) -> bool:
        fd = os.open(lock_path(database, destination), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._files[destination] = fd
        return True

    async def acquire(self, database: str, destinations: Sequence[str]) -> None:
        """Take every destination's lock, waiting for a process that still holds one."""
        for name in destinations:
            if self._try(database, name):
                continue
            log.warning("another process is still delivering to %s (the roles of a serve that was killed?); "
                        "waiting for it to finish before taking over its claims", name)
            while not self._try(database, name):
                await asyncio.sleep(POLL_SECONDS)
            log.info("%s: the other process is gone; delivering", name)

    def close(self) -> None:
        for fd in self._files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.clear()
