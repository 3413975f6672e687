"""Heartbeats: each role process says, in a file of the runtime folder, that it is alive.

Under the supervisor every process shares one runtime folder (``SGBRIDGE_RUNTIME_DIR``); the
ingest process's ``/healthz`` reads it to report every role. A file is replaced atomically
(write, then rename), so a reader never sees half of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

RUNTIME_DIR_ENV = "SGBRIDGE_RUNTIME_DIR"
SUPERVISED_ROLES_ENV = "SGBRIDGE_SUPERVISED_ROLES"
STALE_AFTER_BEATS = 3  # a role that missed this many beats is reported down


def runtime_dir() -> Path | None:
    configured = os.environ.get(RUNTIME_DIR_ENV)
    return Path(configured) if configured else None


def beat(directory: Path, roles: Iterable[str], started_at: float) -> None:
    now = time.time()
    for role in roles:
        target = directory / f"{role}.heartbeat"
        temporary = directory / f".{role}.{os.getpid()}.tmp"
        temporary.write_bytes(orjson.dumps({"pid": os.getpid(), "started_at": started_at, "beat_at": now}))
        temporary.replace(target)


async def keep_beating(directory: Path, roles: Iterable[str], every: float) -> None:
    """Beat now and every ``every`` seconds until cancelled."""
    started_at = time.time()
    roles = list(roles)
    while True:
        with contextlib.suppress(OSError):  # a full disk must not stop the role; /healthz will say so
            await asyncio.to_thread(beat, directory, roles, started_at)
        await asyncio.sleep(every)


def read(directory: Path, every: float) -> dict[str, dict[str, Any]]:
    """Each role's pid, age of its last beat, and whether it is alive (beat within 3 intervals)."""
    now = time.time()
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.heartbeat")):
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        age = max(0.0, now - float(data["beat_at"]))
        found[path.stem] = {"pid": int(data["pid"]), "up_seconds": round(now - float(data["started_at"]), 1),
                            "beat_age_seconds": round(age, 1), "alive": age < STALE_AFTER_BEATS * every}
    return found


def health(own_roles: Iterable[str], every: float) -> dict[str, Any]:
    """What /healthz says of the roles: every supervised role's heartbeat, or this process's roles."""
    directory = runtime_dir()
    expected = [r for r in os.environ.get(SUPERVISED_ROLES_ENV, "").split(",") if r]
    if directory is None:
        return {"roles": {role: {"pid": os.getpid(), "alive": True} for role in own_roles}, "down": []}
    roles = read(directory, every)
    down = [role for role in expected or list(own_roles) if not roles.get(role, {}).get("alive")]
    return {"roles": roles, "down": down}
