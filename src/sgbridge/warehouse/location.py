"""Where warehouse data goes: the dlt destination, its working folder, and a name for logs.

Shared by the event loader and the object sync so both write through identically configured
destinations (DuckDB refuses a second connection to one file with a different configuration).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt

from sgbridge.settings import Settings, WarehouseSettings
from sgbridge.warehouse.keeper import DuckDBKeeper, duckdb_keeper

DUCKDB_LOAD_JOBS = 2
_LOAD_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def default_location(settings: Settings) -> Path:
    """Beside the SQLite journal (or in the working directory for a PostgreSQL journal)."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).resolve().parent
    return Path.cwd()


def duckdb_path(config: WarehouseSettings, home: Path) -> str:
    return config.credentials.get_secret_value() if config.credentials else str(home / "sgbridge.duckdb")


def dlt_destination(config: WarehouseSettings, home: Path) -> Any:
    credentials = config.credentials.get_secret_value() if config.credentials else None
    if config.destination == "duckdb":
        from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

        duck = DuckDbCredentials(duckdb_path(config, home))
        # DuckDB takes up to 80% of RAM by default; merging 1,000,000 contacts then peaks near 1 GB.
        # With a limit it spills to disk instead, a little slower.
        duck.global_config = {"memory_limit": config.duckdb_memory_limit}
        # dlt runs up to 20 load jobs (one per table) at once; within DuckDB's memory limit that many
        # inserts ran out of memory and were retried, or failed the load. Two use both cores of a
        # small machine and stay within it.
        return dlt.destinations.duckdb(duck, max_parallel_load_jobs=DUCKDB_LOAD_JOBS)
    if credentials is not None:
        return dlt.destination(config.destination, credentials=credentials)
    return dlt.destination(config.destination)  # credentials from dlt's own configuration


def keeper_for(config: WarehouseSettings, home: Path) -> DuckDBKeeper | None:
    """DuckDB: what keeps the file open between consecutive loads (see keeper.py); None otherwise."""
    return duckdb_keeper(duckdb_path(config, home)) if config.destination == "duckdb" else None


def describe(config: WarehouseSettings, home: Path) -> str:
    """Where the data goes, for logs and the attempt log (never the credentials)."""
    if config.destination == "duckdb":
        return f"duckdb:{duckdb_path(config, home)}"
    return config.destination


def pipelines_dir(settings: Settings) -> Path:
    config = settings.warehouse
    return Path(config.pipelines_dir) if config.pipelines_dir else default_location(settings) / "sgbridge-dlt"


def load_lock(where: str) -> threading.Lock:
    """One lock per warehouse in this process: the event loads and the object sync take turns
    writing (their extract steps, the slow part of a sync, still run side by side)."""
    with _LOCKS_GUARD:
        return _LOAD_LOCKS.setdefault(where, threading.Lock())


@dataclass(frozen=True)
class Target:
    """Everything a loader of this process needs to write to the configured warehouse."""

    destination: Any  # the dlt destination
    where: str  # for logs and the attempt log, without credentials
    pipelines_dir: Path
    lock: threading.Lock  # writes of the event loads and the object sync take turns
    keeper: DuckDBKeeper | None


def target(settings: Settings) -> Target:
    home = default_location(settings)
    where = describe(settings.warehouse, home)
    return Target(dlt_destination(settings.warehouse, home), where, pipelines_dir(settings), load_lock(where),
                  keeper_for(settings.warehouse, home))
