"""Everything one SendGrid emulator instance remembers.

Kept free of HTTP so tests and seeding code can drive it directly, and so new API areas
(segments, single sends, exports, a seeded account for warehouse syncs) only add a container
here and a module of handlers beside it. The API-area rules live in those modules
(``contact_ops``, ``suppressions``, ``mail``...); this class holds data, ids, the clock and the
asynchronous-job queue.

Asynchronous jobs (contact upserts and deletes, list-member removals, contact exports) are
applied lazily: a job becomes due ``job_delay_seconds`` after it was accepted and is run, in
acceptance order, by the next ``tick()`` — which every request and control call makes. So no
background task is needed, the emulator works the same under ``httpx.ASGITransport`` and
uvicorn, and a test with an injected clock decides exactly when work happens.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sgbridge.emulators.sendgrid.export_store import ExportStore
from sgbridge.emulators.sendgrid.util import iso

IDENTIFIERS = ("email", "phone_number_id", "external_id", "anonymous_id")
MAX_RECORDED_REQUESTS = 10_000  # enough to debug a run without growing with it

# Dynamic templates every fresh emulator has (``templates=`` replaces them).
DEFAULT_TEMPLATES: Mapping[str, str] = {
    "d-5f1e0c3a2b8d4e6f9a7b1c2d3e4f5a6b": "Welcome",
    "d-7a9b8c6d5e4f4a3b2c1d0e9f8a7b6c5d": "Order confirmation",
    "d-0c1d2e3f4a5b4c6d8e9f0a1b2c3d4e5f": "Password reset",
}


# Reserved text fields of a contact, in the order the contact JSON and SendGrid's CSV export use.
RESERVED_TEXT_FIELDS = (
    "first_name", "last_name", "unique_name", "address_line_1", "address_line_2", "city",
    "state_province_region", "postal_code", "country", "phone_number", "whatsapp", "line", "facebook",
)


@dataclass(slots=True)
class Contact:
    """One marketing contact.

    A slot per identifier and reserved field instead of per-contact dicts: a seeded account holds
    a million of these, and this layout (with ``None`` for unset values, shared strings and shared
    ``list_ids`` tuples) takes well under half the memory of three dicts per contact.
    """

    id: str
    created_at: float
    updated_at: float
    email: str | None = None
    phone_number_id: str | None = None
    external_id: str | None = None
    anonymous_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    unique_name: str | None = None
    address_line_1: str | None = None
    address_line_2: str | None = None
    city: str | None = None
    state_province_region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    phone_number: str | None = None
    whatsapp: str | None = None
    line: str | None = None
    facebook: str | None = None
    alternate_emails: tuple[str, ...] = ()
    custom: dict[str, Any] | None = None  # custom field id -> value; None while the contact has none
    list_ids: tuple[str, ...] = ()  # replaced, never mutated in place: seeded contacts share these tuples

    @property
    def identifiers(self) -> dict[str, str]:
        """The identifiers that are set, by kind (``email``, ``external_id``...)."""
        found = {"email": self.email, "phone_number_id": self.phone_number_id, "external_id": self.external_id,
                 "anonymous_id": self.anonymous_id}
        return {kind: value for kind, value in found.items() if value is not None}


@dataclass
class MarketingList:
    id: str
    name: str
    created_at: float


@dataclass
class FieldDefinition:
    id: str
    name: str
    field_type: str  # Text / Number / Date


@dataclass
class Job:
    """An accepted asynchronous job; ``run`` applies it to the state when it is due."""

    id: str
    job_type: str
    created_at: float
    due_at: float
    run: Callable[[SendGridEmulatorState, Job], None]
    payload: dict[str, Any]
    status: str = "pending"
    results: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)  # per-row problems, for errors_url
    finished_at: float | None = None
    base_url: str = ""  # scheme://host the job was submitted to, for errors_url


@dataclass
class AsmGroup:
    id: int
    name: str
    description: str
    is_default: bool
    members: dict[str, float] = field(default_factory=dict)  # email -> suppressed at (epoch s)


@dataclass
class Template:
    id: str
    name: str
    generation: str  # "dynamic" or "legacy"
    updated_at: float


@dataclass(slots=True)
class Segment:
    """A Segments 2.0 segment. ``member_ids`` is its evaluated membership (ordered, for stable
    samples): SendGrid re-evaluates segments about hourly, the emulator when it seeds them; a
    member that was deleted or left every parent list no longer counts."""

    id: str
    name: str
    query_dsl: str
    parent_list_ids: tuple[str, ...]
    created_at: float
    updated_at: float
    member_ids: dict[str, None] = field(default_factory=dict)


@dataclass(slots=True)
class SingleSend:
    id: str
    name: str
    status: str  # draft | scheduled | triggered
    categories: tuple[str, ...]
    send_at: float | None
    created_at: float
    updated_at: float
    is_abtest: bool = False
    list_ids: tuple[str, ...] = ()
    segment_ids: tuple[str, ...] = ()
    send_to_all: bool = False
    subject: str = ""
    html_content: str = ""
    plain_content: str = ""
    suppression_group_id: int | None = None
    sender_id: int | None = None


@dataclass(slots=True)
class SuppressionEntry:
    """One address on a bounce / block / spam report / invalid e-mail list."""

    created: int  # epoch seconds, as the API shows it
    reason: str = ""
    status: str = ""  # enhanced SMTP status (bounces, blocks)
    ip: str = ""  # sending IP (spam reports)


@dataclass(slots=True)
class ContactExport:
    """A ``POST /v3/marketing/contacts/exports`` job and, once ready, its files."""

    id: str
    export_type: str  # contacts_export | list_export | segment_export
    file_type: str  # csv | json
    list_ids: tuple[str, ...]
    segment_ids: tuple[str, ...]
    max_file_bytes: int
    created_at: float
    updated_at: float
    expires_at: float
    base_url: str  # scheme://host the export was requested from: download URLs point there
    status: str = "pending"  # pending | ready | failure
    completed_at: float | None = None
    files: list[str] = field(default_factory=list)  # file names, in download-URL order
    token: str = ""  # the secret every download URL carries (pre-signed-URL stand-in)
    contact_count: int = 0
    message: str | None = None


class SendGridEmulatorState:
    """Data of one emulated SendGrid account."""

    def __init__(
        self,
        *,
        job_delay_seconds: float = 1.0,
        templates: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        max_recorded_requests: int = MAX_RECORDED_REQUESTS,
    ) -> None:
        self.job_delay_seconds = job_delay_seconds
        self.clock = clock
        self.seed_templates = dict(DEFAULT_TEMPLATES if templates is None else templates)
        self.max_recorded_requests = max_recorded_requests
        self.user_id = "8461349"  # the account's user id, shown on export jobs
        self.export_store = ExportStore()
        self.reset()

    def reset(self) -> None:
        """An empty account (export files deleted); the clock and job delay stay."""
        self.contacts: dict[str, Contact] = {}
        # identifier kind -> value -> contact id: one dict per kind, no tuple key per contact.
        self.identity_index: dict[str, dict[str, str]] = {kind: {} for kind in IDENTIFIERS}
        self.lists: dict[str, MarketingList] = {}
        self.custom_fields: dict[str, FieldDefinition] = {}
        self.next_field_number = 1
        self.jobs: dict[str, Job] = {}
        self.forcing_jobs = False
        self.groups: dict[int, AsmGroup] = {}
        self.next_group_id = 1
        self.global_suppressions: dict[str, float] = {}  # email -> created (epoch s)
        # One entry per address and list (re-adding replaces it): email -> entry.
        self.bounces: dict[str, SuppressionEntry] = {}
        self.blocks: dict[str, SuppressionEntry] = {}
        self.spam_reports: dict[str, SuppressionEntry] = {}
        self.invalid_emails: dict[str, SuppressionEntry] = {}
        self.segments: dict[str, Segment] = {}
        self.single_sends: dict[str, SingleSend] = {}
        self.exports: dict[str, ContactExport] = {}
        self.export_store.clear()
        self.export_rows_per_file: int | None = None  # test knob: split exports every N rows
        self.export_failures_pending = 0  # the next N exports end in "failure" (test knob)
        self.export_failure_message = "export failed: internal error"
        self.messages: list[dict[str, Any]] = []
        now = self.now()
        self.templates: dict[str, Template] = {
            tid: Template(tid, name, "dynamic" if tid.startswith("d-") else "legacy", now)
            for tid, name in self.seed_templates.items()
        }
        self.requests: deque[dict[str, Any]] = deque(maxlen=self.max_recorded_requests)
        self.next_request_number = 1

    def close(self) -> None:
        """Delete the export files now (they are also deleted when the state is collected)."""
        self.export_store.clear()

    def now(self) -> float:
        return self.clock()

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    # -- contacts --------------------------------------------------------------------------

    def find_contact(self, kind: str, value: str) -> Contact | None:
        contact_id = self.identity_index[kind].get(value)
        return None if contact_id is None else self.contacts.get(contact_id)

    def index_contact(self, contact: Contact) -> None:
        for kind, value in contact.identifiers.items():
            self.identity_index[kind][value] = contact.id

    def remove_contact(self, contact_id: str) -> bool:
        contact = self.contacts.pop(contact_id, None)
        if contact is None:
            return False
        for kind, value in contact.identifiers.items():
            self.identity_index[kind].pop(value, None)
        return True

    def list_members(self, list_id: str) -> list[Contact]:
        return [c for c in self.contacts.values() if list_id in c.list_ids]

    def list_member_counts(self) -> Counter[str]:
        """Members of every list in one pass (a list page must not scan the contacts per list)."""
        return Counter(list_id for contact in self.contacts.values() for list_id in contact.list_ids)

    def in_segment(self, segment: Segment, contact: Contact) -> bool:
        if contact.id not in segment.member_ids:
            return False
        return not segment.parent_list_ids or not set(segment.parent_list_ids).isdisjoint(contact.list_ids)

    def segment_members(self, segment: Segment) -> list[Contact]:
        found = (self.contacts.get(contact_id) for contact_id in segment.member_ids)
        return [c for c in found if c is not None and self.in_segment(segment, c)]

    def segment_size(self, segment: Segment) -> int:
        """``len(segment_members(segment))`` without building the list (a listing counts them all)."""
        contacts = self.contacts
        if not segment.parent_list_ids:
            return sum(1 for contact_id in segment.member_ids if contact_id in contacts)
        parents = frozenset(segment.parent_list_ids)
        return sum(1 for contact_id in segment.member_ids
                   if (c := contacts.get(contact_id)) is not None and not parents.isdisjoint(c.list_ids))

    def field_by_name(self, name: str) -> FieldDefinition | None:
        lowered = name.lower()
        return next((f for f in self.custom_fields.values() if f.name.lower() == lowered), None)

    # -- suppressions ----------------------------------------------------------------------

    def drop_reason(self, email: str, group_id: int | None, bypass: frozenset[str] = frozenset()) -> str | None:
        """Why SendGrid would drop a message to ``email`` (the ``dropped`` event's reason), or None.

        ``bypass``: the message's ``mail_settings`` filters that are on. ``bypass_list_management``
        skips every list; the others one list each, and ``bypass_unsubscribe_management`` only
        the global unsubscribes, never a group's (tsg_mail_v3).
        """
        if "bypass_list_management" in bypass:
            return None
        email = email.lower()
        if email in self.bounces and "bypass_bounce_management" not in bypass:
            return "Bounced Address"
        if email in self.spam_reports and "bypass_spam_management" not in bypass:
            return "Spam Reporting Address"
        if email in self.invalid_emails:
            return "Invalid"
        if email in self.global_suppressions and "bypass_unsubscribe_management" not in bypass:
            return "Unsubscribed Address"
        group = self.groups.get(group_id) if group_id is not None else None
        return "Unsubscribed Address" if group is not None and email in group.members else None

    # -- asynchronous jobs -----------------------------------------------------------------

    def schedule_job(
        self,
        job_type: str,
        run: Callable[[SendGridEmulatorState, Job], None],
        payload: dict[str, Any],
        base_url: str = "",
    ) -> Job:
        now = self.now()
        job = Job(self.new_id(), job_type, now, now + self.job_delay_seconds, run, payload, base_url=base_url)
        self.jobs[job.id] = job
        return job

    def tick(self, *, force: bool = False) -> int:
        """Run every due job (all pending ones with ``force``); returns how many ran."""
        now = self.now()
        ran = 0
        self.forcing_jobs = force  # a forced run finishes every job before it returns (exports too)
        for job in list(self.jobs.values()):  # dicts keep insertion order: jobs run as accepted
            if job.status == "pending" and (force or job.due_at <= now):
                job.run(self, job)
                if job.status != "running":  # a job still running in a thread sets it when done
                    job.finished_at = self.now()
                ran += 1
        self.forcing_jobs = False
        self._delete_expired_exports(now)
        return ran

    def _delete_expired_exports(self, now: float) -> None:
        # Their URLs answer 403 "expired" from now on; the disk space (gigabytes for a large
        # account) is given back at once rather than when the emulator stops.
        for export in self.exports.values():
            if export.status == "ready" and export.expires_at < now and self.export_store.holds(export.id):
                self.export_store.remove(export.id)

    def job_json(self, job: Job) -> dict[str, Any]:
        """The job as ``GET /v3/marketing/contacts/imports/{id}`` shows it."""
        data: dict[str, Any] = {"id": job.id, "status": job.status, "job_type": job.job_type}
        if job.status != "pending":
            data["results"] = dict(job.results)
            if job.errors:
                data["results"]["errors_url"] = f"{job.base_url}/_emulator/jobs/{job.id}/errors"
        data["started_at"] = iso(job.created_at)
        if job.finished_at is not None:
            data["finished_at"] = iso(job.finished_at)
        return data

    # -- request log -----------------------------------------------------------------------

    def record_request(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry["number"] = self.next_request_number
        self.next_request_number += 1
        self.requests.append(entry)
        return entry

    def recorded_requests(self, filters: Iterable[tuple[str, str]] = ()) -> list[dict[str, Any]]:
        wanted = list(filters)
        return [r for r in self.requests if all(str(r.get(k)) == v for k, v in wanted)]
