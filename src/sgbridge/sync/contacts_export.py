"""All contacts, through SendGrid's export job (the API has no other way to list them all).

``POST /v3/marketing/contacts/exports`` starts a job; ``GET …/exports/{id}`` is polled until it is
``ready`` (or ``failure``); its ``urls`` are pre-signed links to gzip CSV files with upper-case
headers (``EMAIL, FIRST_NAME, …, CREATED_AT, UPDATED_AT, CONTACT_ID``, custom fields by name).

Each file is downloaded to a temporary folder and read by Arrow's streaming CSV reader a block at
a time, so memory stays flat whatever the size of the account (1,000,000 contacts are one
~30 MB download and never all in memory). Every column is text except the two timestamps: a
custom field holding something unexpected must not fail the whole sync.
"""

from __future__ import annotations

import csv
import gzip
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from sgbridge.sync.api import SyncApi, SyncApiError

EXPORTS = "/v3/marketing/contacts/exports"
TIMESTAMP_COLUMNS = ("created_at", "updated_at")
BLOCK_BYTES = 1 << 20  # about 4,000 contacts per Arrow batch


class ExportFailed(SyncApiError):
    pass


def wait_for_export(api: SyncApi, timeout: float, first_poll: float,
                    on_status: Callable[[dict[str, Any]], None] | None = None,
                    list_ids: Sequence[str] = ()) -> dict[str, Any]:
    """Start a CSV export of every contact (or of the members of ``list_ids``) and wait until it
    is ready; returns the job."""
    started = api.post(EXPORTS, {"file_type": "csv", **({"list_ids": list(list_ids)} if list_ids else {})})
    export_id = started.get("id") if isinstance(started, dict) else None
    if not export_id:
        raise ExportFailed(f"POST {EXPORTS}: no export id in the answer")
    deadline = time.monotonic() + timeout
    delay = first_poll
    while True:
        job = api.get(f"{EXPORTS}/{export_id}")
        status = job.get("status") if isinstance(job, dict) else None
        if on_status is not None and isinstance(job, dict):
            on_status(job)
        if status == "ready":
            return dict(job)
        if status == "failure":
            raise ExportFailed(f"contacts export {export_id} failed: {job.get('message') or 'no reason given'}")
        if time.monotonic() + delay > deadline:
            raise ExportFailed(f"contacts export {export_id} not ready after {timeout:.0f} s (status {status!r})")
        api.wait(delay)
        delay = min(delay * 1.5, 30.0)


GZIP_MAGIC = b"\x1f\x8b"


def _header(path: Path) -> list[str]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def read_export_file(path: Path) -> Iterator[pa.Table]:
    """Arrow tables of one gzip CSV file, lower-case column names, a block at a time."""
    names = [name.strip().lower() for name in _header(path)]
    if not names:
        return
    types: dict[str, pa.DataType] = {name: pa.string() for name in names}
    for name in TIMESTAMP_COLUMNS:
        if name in types:
            types[name] = pa.timestamp("us", tz="UTC")  # DuckDB takes a time zone or a precision, not both
    reader = pcsv.open_csv(
        str(path),  # with a .gz suffix Arrow decompresses as it streams
        read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, block_size=BLOCK_BYTES),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                            timestamp_parsers=["%Y-%m-%dT%H:%M:%SZ", pcsv.ISO8601]),
    )
    for batch in reader:
        if batch.num_rows:
            yield pa.Table.from_batches([batch])


def export_tables(api: SyncApi, job: dict[str, Any], work_dir: Path | None = None) -> Iterator[pa.Table]:
    """Download every file of a ready export and yield its rows as Arrow tables."""
    urls = [u for u in job.get("urls") or [] if isinstance(u, str)]
    with tempfile.TemporaryDirectory(prefix="sgbridge-export-", dir=work_dir) as folder:
        for index, url in enumerate(urls):
            target = Path(folder) / f"part-{index}.csv"
            api.download(url, target)
            with target.open("rb") as handle:
                if handle.read(2) == GZIP_MAGIC:  # SendGrid gzips its exports; a plain file works too
                    target = target.rename(target.with_suffix(".csv.gz"))
            yield from read_export_file(target)
            target.unlink()
