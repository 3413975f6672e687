"""Contact export files, written as SendGrid writes them: gzip, CSV or newline-delimited JSON.

CSV, as in a real export (Airbyte's ``unit_tests/decompressed_response.csv``): a header of
upper-case quoted names (the reserved fields, then one column per custom field, then
``CREATED_AT``, ``UPDATED_AT``, ``CONTACT_ID``), every non-empty value quoted, empty values
left empty and unquoted, ``\\n`` line ends, alternate e-mails comma-joined inside one value,
timestamps like ``2021-02-01T12:35:22Z``. JSON: one contact per line, with the fields
``GET /v3/marketing/contacts/{id}`` shows (without its ``_metadata`` link).

Rows are streamed to disk in small batches, never held whole in memory, and a new file is
started when the next row would take the current one past ``max_bytes`` of uncompressed data
(SendGrid's ``max_file_size``) or past ``rows_per_file`` rows (a test knob). Every CSV file
starts with the header, so each download URL decodes on its own.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from sgbridge.emulators.sendgrid.contact_ops import contact_data
from sgbridge.emulators.sendgrid.state import Contact, SendGridEmulatorState
from sgbridge.emulators.sendgrid.util import iso

RESERVED_COLUMNS = (
    "EMAIL", "FIRST_NAME", "LAST_NAME", "ADDRESS_LINE_1", "ADDRESS_LINE_2", "CITY", "STATE_PROVINCE_REGION",
    "POSTAL_CODE", "COUNTRY", "ALTERNATE_EMAILS", "PHONE_NUMBER", "WHATSAPP", "LINE", "FACEBOOK", "UNIQUE_NAME",
)
TRAILING_COLUMNS = ("CREATED_AT", "UPDATED_AT", "CONTACT_ID")
COMPRESS_LEVEL = 1  # zlib's fastest: compression, not formatting, would otherwise dominate
BATCH_BYTES = 256 * 1024


def _text(value: Any) -> str | None:
    """A custom field value as export text (whole numbers without ``.0``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def csv_header(custom_field_names: Iterable[str]) -> bytes:
    names = (*RESERVED_COLUMNS, *(name.upper() for name in custom_field_names), *TRAILING_COLUMNS)
    return (",".join(f'"{name}"' for name in names) + "\n").encode()


def csv_row_encoder(custom_field_ids: list[str]) -> Callable[[Contact], bytes]:
    no_custom_values = ("",) * len(custom_field_ids)

    # Written for speed (it runs once per contact): comprehensions, not a quoting function per cell.
    def encode(c: Contact) -> bytes:
        reserved = (
            c.email, c.first_name, c.last_name, c.address_line_1, c.address_line_2, c.city, c.state_province_region,
            c.postal_code, c.country, ",".join(c.alternate_emails), c.phone_number, c.whatsapp, c.line, c.facebook,
            c.unique_name,
        )
        cells = ['"' + v.replace('"', '""') + '"' if v else "" for v in reserved]
        custom = c.custom
        if custom:
            texts = [_text(custom.get(fid)) for fid in custom_field_ids]
            cells += ['"' + v.replace('"', '""') + '"' if v else "" for v in texts]
        else:
            cells += no_custom_values
        # Timestamps and uuids never contain quotes.
        cells.append(f'"{iso(c.created_at)}","{iso(c.updated_at)}","{c.id}"\n')
        return ",".join(cells).encode()

    return encode


class _SplitFiles:
    """gzip files ``1.<ext>.gz``, ``2.<ext>.gz``... in ``folder``, each within the limits."""

    def __init__(self, folder: Path, extension: str, header: bytes, max_bytes: int, max_rows: int | None) -> None:
        self.folder, self.extension, self.header = folder, extension, header
        self.max_bytes, self.max_rows = max_bytes, max_rows
        self.names: list[str] = []
        self._file: gzip.GzipFile | None = None
        self._batch: list[bytes] = []
        self._batch_bytes = self._file_bytes = self._file_rows = 0

    def _start_file(self) -> None:
        self.close()
        name = f"{len(self.names) + 1}.{self.extension}.gz"
        self.names.append(name)
        # Kept open across write_row calls (closed by close()), so no context manager here.
        self._file = gzip.GzipFile(self.folder / name, "wb", compresslevel=COMPRESS_LEVEL)
        self._file_bytes = self._file_rows = 0
        if self.header:
            self._append(self.header)

    def _append(self, data: bytes) -> None:
        self._batch.append(data)
        self._batch_bytes += len(data)
        self._file_bytes += len(data)
        if self._batch_bytes >= BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._file is not None and self._batch:
            self._file.write(b"".join(self._batch))
        self._batch.clear()
        self._batch_bytes = 0

    def write_row(self, row: bytes) -> None:
        full = self._file_rows > 0 and (
            self._file_bytes + len(row) > self.max_bytes
            or (self.max_rows is not None and self._file_rows >= self.max_rows)
        )
        if self._file is None or full:
            self._start_file()
        self._append(row)
        self._file_rows += 1

    def finish(self) -> None:
        if not self.names:
            self._start_file()  # an export without contacts is still one (header-only) file
        self.close()

    def close(self) -> None:
        self._flush()
        if self._file is not None:
            self._file.close()
            self._file = None


def write_export(
    state: SendGridEmulatorState,
    contacts: Iterable[Contact],
    folder: Path,
    *,
    file_type: str,
    max_bytes: int,
    rows_per_file: int | None = None,
) -> tuple[list[str], int]:
    """Write ``contacts`` to gzip files in ``folder``; returns (file names in order, rows written)."""
    if file_type == "csv":
        fields = list(state.custom_fields.values())
        header = csv_header(f.name for f in fields)
        encode = csv_row_encoder([f.id for f in fields])
    else:
        header = b""

        def encode(contact: Contact) -> bytes:
            return orjson.dumps(contact_data(state, contact)) + b"\n"

    files = _SplitFiles(folder, file_type, header, max_bytes, rows_per_file)
    count = 0
    try:
        for contact in contacts:
            files.write_row(encode(contact))
            count += 1
        files.finish()
    finally:
        files.close()
    return files.names, count
