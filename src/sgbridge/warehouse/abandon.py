"""Giving up a load that cannot finish, and taking back the rows its finished jobs appended.

dlt loads each table of a load package as its own job, so a load that fails may have loaded some
of its tables already. Aborting the package alone left those rows: ``activity``'s made the
loader's exactly-once check skip the window's events in every other table when the window was
loaded again, and a per-type table's were doubled.

So, in this order:

1. the tables each pending package may have written to are recorded in a file in the pipeline's
   folder;
2. the packages are aborted, after which dlt can never finish them;
3. the rows of those loads are deleted, in one transaction;
4. the record is removed.

A crash or an unreachable warehouse anywhere in between leaves the record. The next load calls
``forget_abandoned`` before anything else, which aborts first if the crash came before step 2.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import orjson

RECORD = "sgbridge_abandoned_loads.json"
# Jobs that may have written rows: finished ones, and those running when the process died.
_MAY_HAVE_WRITTEN = ("completed_jobs", "started_jobs")


def abandon(pipeline: Any, tables: Collection[str]) -> None:
    """Give up every pending load package of the pipeline, and delete the rows they appended to
    ``tables``. Raises if the warehouse does not answer; the next load then finishes the job."""
    loads = {load_id: _written(pipeline, load_id, tables) for load_id in pipeline.list_normalized_load_packages()}
    if any(loads.values()):
        _write_record(pipeline, loads)
    pipeline.abort_packages()
    forget_abandoned(pipeline)


def forget_abandoned(pipeline: Any) -> None:
    """Delete the rows of the loads given up, as recorded, if an earlier ``abandon`` did not finish."""
    record = _record_path(pipeline)
    if not record.exists():
        return
    loads: dict[str, list[str]] = orjson.loads(record.read_bytes())
    if set(loads) & set(pipeline.list_normalized_load_packages()):
        pipeline.abort_packages()  # before the deletes: a package dlt finished later would lose rows
    by_table: dict[str, list[str]] = {}
    for load_id, tables in loads.items():
        for table in tables:
            by_table.setdefault(table, []).append(load_id)
    if by_table:
        with pipeline.sql_client() as client, client.begin_transaction():
            for table, load_ids in by_table.items():
                marks = ", ".join(["%s"] * len(load_ids))
                client.execute_sql(f"DELETE FROM {client.make_qualified_table_name(table)} "
                                   f"WHERE _dlt_load_id IN ({marks})", *load_ids)
    record.unlink()


def extract_folders(pipeline: Any) -> set[str]:
    """The folders dlt's extracts write their packages in, under ``<pipeline>/normalize/``: one per
    extract, moved to ``extracted/`` when it succeeds."""
    normalize = Path(pipeline.working_dir) / "normalize"
    try:
        return {entry.name for entry in os.scandir(normalize) if entry.is_dir() and entry.name != "extracted"}
    except FileNotFoundError:
        return set()


def remove_failed_extracts(pipeline: Any, before: set[str]) -> None:
    """Delete the folders of extracts that failed since ``before`` was taken: dlt leaves them,
    each with its half-written files, and a window refused at every retry left one per try."""
    normalize = Path(pipeline.working_dir) / "normalize"
    for name in extract_folders(pipeline) - before:
        shutil.rmtree(normalize / name, ignore_errors=True)


def under_way_when_stopped(pipeline: Any) -> bool:
    """Whether a pending load package has a job that was running when the process stopped. Its
    rows may be in already (the insert committed, dlt had not yet marked the job done), and dlt
    would run it again: such a package must be given up, not finished."""
    return any(pipeline.get_load_package_info(load_id).jobs.get("started_jobs")
               for load_id in pipeline.list_normalized_load_packages())


def _written(pipeline: Any, load_id: str, tables: Collection[str]) -> list[str]:
    """The tables of ``tables`` that the package's jobs may have written rows to."""
    jobs = pipeline.get_load_package_info(load_id).jobs
    names = {job.job_file_info.table_name for state in _MAY_HAVE_WRITTEN for job in jobs.get(state, [])}
    return sorted(names & set(tables))


def _record_path(pipeline: Any) -> Path:
    return Path(pipeline.working_dir) / RECORD


def _write_record(pipeline: Any, loads: dict[str, list[str]]) -> None:
    """Written whole or not at all, and on disk before the packages are aborted."""
    record = _record_path(pipeline)
    partial = record.with_suffix(".tmp")
    with partial.open("wb") as out:
        out.write(orjson.dumps(loads))
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, record)
