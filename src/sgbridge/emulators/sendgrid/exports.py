"""Contact exports: the only way to read every contact (tsg_mc_contacts_v3, sendgrid-api.md §3.1).

``POST /v3/marketing/contacts/exports`` accepts ``{list_ids?, segment_ids?, file_type: csv|json
(default csv), max_file_size (MB, default 5000), notifications?}`` and answers ``202 {"id",
"_metadata"}``. The export is an asynchronous job (see ``state.tick``): ``pending`` for the
job delay, then ``ready`` with one download URL per file, or ``failure`` with a ``message``.
``GET .../exports/{id}`` polls one export, ``GET .../exports`` lists them all.

When the job runs, the selected contacts (members of any of ``list_ids`` or ``segment_ids``,
or every contact) are written to disk as they are at that moment (``export_writer``). The
URLs point at the emulator (``downloads``) and, like S3 pre-signed links, need no API key but
carry a token and expire 72 hours after the export was ready ("Exports are downloadable for
72 hours"). Tests make an export fail with ``state.export_failures_pending`` (or ``POST
/_emulator/exports/config {"fail_next": 1}``).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

from starlette.responses import Response

from sgbridge.emulators.sendgrid.contacts import MARKETING_READ
from sgbridge.emulators.sendgrid.export_writer import write_export
from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.state import Contact, ContactExport, Job, SendGridEmulatorState
from sgbridge.emulators.sendgrid.util import ApiError, FieldError, bad_request, iso, json_response, not_found

DEFAULT_MAX_FILE_SIZE_MB = 5000
BYTES_PER_MB = 1024 * 1024
DOWNLOAD_HOURS = 72
DOWNLOAD_SECONDS = DOWNLOAD_HOURS * 3600
DOWNLOAD_PATH = "/_emulator/downloads"


def download_urls(export: ContactExport) -> list[str]:
    return [f"{export.base_url}{DOWNLOAD_PATH}/{export.id}/{name}?token={export.token}" for name in export.files]


def export_json(state: SendGridEmulatorState, export: ContactExport) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": export.id,
        "status": export.status,
        "created_at": iso(export.created_at),
        "updated_at": iso(export.updated_at),
        "expires_at": iso(export.expires_at),
        "urls": download_urls(export) if export.status == "ready" else [],
        "user_id": state.user_id,
        "export_type": export.export_type,
        "contact_count": export.contact_count,
        "lists": [{"ID": lid, "Name": item.name if (item := state.lists.get(lid)) else ""}
                  for lid in export.list_ids],
        "segments": [{"ID": sid, "Name": seg.name if (seg := state.segments.get(sid)) else ""}
                     for sid in export.segment_ids],
        "_metadata": {"self": f"{export.base_url}/v3/marketing/contacts/exports/{export.id}"},
    }
    if export.completed_at is not None:
        data["completed_at"] = iso(export.completed_at)
    if export.message is not None:
        data["message"] = export.message
    return data


def _selected_contacts(state: SendGridEmulatorState, export: ContactExport,
                       contacts: list[Contact]) -> Iterator[Contact]:
    """Every contact, or the members of any of the export's lists and segments (union)."""
    if not export.list_ids and not export.segment_ids:
        yield from contacts
        return
    lists = frozenset(export.list_ids)
    segments = [s for sid in export.segment_ids if (s := state.segments.get(sid)) is not None]
    for contact in contacts:
        if not lists.isdisjoint(contact.list_ids) or any(state.in_segment(s, contact) for s in segments):
            yield contact


INLINE_EXPORT_CONTACTS = 50_000  # larger selections are written by a thread, as the real one takes a while


def run_export(state: SendGridEmulatorState, job: Job) -> None:
    """Write the export: at once for small accounts, else in a thread, so that the emulator
    keeps answering (a million contacts take ~15 s to write) while the export is "pending"."""
    export = state.exports[job.payload["export_id"]]
    if state.export_failures_pending > 0:
        state.export_failures_pending -= 1
        export.updated_at = export.completed_at = state.now()
        export.status, export.message = "failure", state.export_failure_message
        _finish(state, job, export)
        return
    # A snapshot of the contacts as they are now: requests go on changing the dict meanwhile.
    contacts = list(state.contacts.values())
    if len(contacts) <= INLINE_EXPORT_CONTACTS or state.forcing_jobs:
        _write(state, job, export, contacts)
        return
    job.status = "running"  # not pending: tick() does not start it again
    threading.Thread(target=_write, args=(state, job, export, contacts), name=f"export-{export.id}",
                     daemon=True).start()


def _write(state: SendGridEmulatorState, job: Job, export: ContactExport, contacts: list[Contact]) -> None:
    try:
        files, count = write_export(
            state, _selected_contacts(state, export, contacts), state.export_store.folder(export.id),
            file_type=export.file_type, max_bytes=export.max_file_bytes, rows_per_file=state.export_rows_per_file,
        )
    except OSError as exc:  # a full disk fails the export, as a failed S3 upload would
        state.export_store.remove(export.id)
        export.message = f"export failed: {exc.strerror or exc}"
        export.status = "failure"
    else:
        export.files, export.contact_count = files, count
        export.token = secrets.token_urlsafe(24)
        export.expires_at = state.now() + DOWNLOAD_SECONDS
        export.status = "ready"
    export.updated_at = export.completed_at = state.now()
    _finish(state, job, export)


def _finish(state: SendGridEmulatorState, job: Job, export: ContactExport) -> None:
    job.results = {"contact_count": export.contact_count, "file_count": len(export.files)}
    job.finished_at = state.now()
    job.status = "completed" if export.status == "ready" else "failed"


def create_export(call: Call) -> Response:
    state, body = call.state, call.body
    list_ids, segment_ids = list(body.get("list_ids") or []), list(body.get("segment_ids") or [])
    unknown = [FieldError("list_ids", f"list id '{lid}' does not exist") for lid in list_ids if lid not in state.lists]
    unknown += [FieldError("segment_ids", f"segment id '{sid}' does not exist")
                for sid in segment_ids if sid not in state.segments]
    if unknown:
        raise ApiError(404, unknown)
    max_mb = int(body.get("max_file_size", DEFAULT_MAX_FILE_SIZE_MB))
    if max_mb < 1:
        raise bad_request("max_file_size must be at least 1 (MB)", "max_file_size")
    now = state.now()
    export = ContactExport(
        id=state.new_id(),
        export_type="list_export" if list_ids else ("segment_export" if segment_ids else "contacts_export"),
        file_type=str(body.get("file_type", "csv")),
        list_ids=tuple(list_ids),
        segment_ids=tuple(segment_ids),
        max_file_bytes=max_mb * BYTES_PER_MB,
        created_at=now,
        updated_at=now,
        expires_at=now + DOWNLOAD_SECONDS,  # required while pending too; set again when ready
        base_url=call.base_url,
    )
    state.exports[export.id] = export
    state.schedule_job("export", run_export, {"export_id": export.id}, call.base_url)
    return json_response({"id": export.id, "_metadata": {"self": f"{call.base_url}/v3/marketing/contacts/exports/"
                                                                  f"{export.id}"}}, 202)


def export_status(call: Call) -> Response:
    export = call.state.exports.get(call.params["id"])
    if export is None:
        raise not_found("export not found", "id")
    return json_response(export_json(call.state, export))


def all_exports(call: Call) -> Response:
    result = [export_json(call.state, e) for e in call.state.exports.values()]
    return json_response({"result": result, "_metadata": {"self": f"{call.base_url}/v3/marketing/contacts/exports"}})


ENDPOINTS = [
    # Reading every contact is a read, whatever the verb: Airbyte's key has only marketing.read.
    Endpoint("POST", "/v3/marketing/contacts/exports", create_export, MARKETING_READ),
    Endpoint("GET", "/v3/marketing/contacts/exports", all_exports, MARKETING_READ),
    Endpoint("GET", "/v3/marketing/contacts/exports/{id}", export_status, MARKETING_READ),
]
