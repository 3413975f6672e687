"""How busy the ingest process on this machine is, for background roles that yield to it.

Under the supervisor, the ingest process's pid is in its heartbeat (roles/heartbeat.py); its CPU
time is read from ``/proc/PID/stat`` (Linux). ``cpu_share`` is the share of one core it used since
the previous reading: ingesting a burst of webhooks it is near 1 or above (its event loop, the
journal writer and the signature threads), idle near 0. Without a runtime folder (a role run
alone, perhaps on another machine), or without ``/proc``, nothing is known and nobody waits.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson

from sgbridge.roles import heartbeat

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
MIN_INTERVAL = 0.2  # seconds between two readings for a share to mean something


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user and system) a process has used; None if it is gone or there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


class IngestPressure:
    """The ingest process's CPU share, read at most every ``MIN_INTERVAL`` seconds."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else heartbeat.runtime_dir()
        self._pid: int | None = None
        self._last: tuple[float, float] | None = None  # (monotonic time, CPU seconds)
        self._share: float | None = None

    def _ingest_pid(self) -> int | None:
        if self.directory is None:
            return None
        try:
            pid = int(orjson.loads((self.directory / "ingest.heartbeat").read_bytes())["pid"])
        except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None
        if pid != self._pid:  # a restarted ingest process: start over
            self._pid, self._last, self._share = pid, None, None
        return pid

    def cpu_share(self) -> float | None:
        """The share of a core ingest used lately; None if it cannot be known."""
        pid = self._ingest_pid()
        if pid is None:
            return None
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < MIN_INTERVAL:
            return self._share
        used = cpu_seconds(pid)
        if used is None:
            self._last = self._share = None
            return None
        if self._last is not None:
            self._share = (used - self._last[1]) / (now - self._last[0])
        self._last = (now, used)
        return self._share
