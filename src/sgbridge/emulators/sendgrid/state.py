"""Everything one SendGrid emulator instance remembers.

Kept free of HTTP so tests and seeding code can drive it directly, and so new API areas
(segments, single sends, exports, a seeded account for warehouse syncs) only add a container
here and a module of handlers beside it. The API-area rules live in those modules
(``contact_ops``, ``suppressions``, ``mail``...); this class holds data, ids, the clock and the
asynchronous-job queue.

Asynchronous jobs (contact upserts and deletes, list-member removals) are applied lazily: a
job becomes due ``job_delay_seconds`` after it was accepted and is run, in acceptance order,
by the next ``tick()`` — which every request and control call makes. So no background task is
needed, the emulator works the same under ``httpx.ASGITransport`` and uvicorn, and a test with
an injected clock decides exactly when work happens.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sgbridge.emulators.sendgrid.util import iso

IDENTIFIERS = ("email", "phone_number_id", "external_id", "anonymous_id")
MAX_RECORDED_REQUESTS = 10_000  # enough to debug a run without growing with it

# Dynamic templates every fresh emulator has (``templates=`` replaces them).
DEFAULT_TEMPLATES: Mapping[str, str] = {
    "d-5f1e0c3a2b8d4e6f9a7b1c2d3e4f5a6b": "Welcome",
    "d-7a9b8c6d5e4f4a3b2c1d0e9f8a7b6c5d": "Order confirmation",
    "d-0c1d2e3f4a5b4c6d8e9f0a1b2c3d4e5f": "Password reset",
}


@dataclass
class Contact:
    id: str
    created_at: float
    updated_at: float
    identifiers: dict[str, str] = field(default_factory=dict)  # email / phone_number_id / ...
    fields: dict[str, Any] = field(default_factory=dict)  # reserved fields: first_name, city...
    custom: dict[str, Any] = field(default_factory=dict)  # custom field id -> value
    list_ids: list[str] = field(default_factory=list)


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
        self.reset()

    def reset(self) -> None:
        self.contacts: dict[str, Contact] = {}
        self.identity_index: dict[tuple[str, str], str] = {}  # (identifier kind, value) -> contact id
        self.lists: dict[str, MarketingList] = {}
        self.custom_fields: dict[str, FieldDefinition] = {}
        self.next_field_number = 1
        self.jobs: dict[str, Job] = {}
        self.groups: dict[int, AsmGroup] = {}
        self.next_group_id = 1
        self.global_suppressions: dict[str, float] = {}  # email -> created (epoch s)
        self.messages: list[dict[str, Any]] = []
        now = self.now()
        self.templates: dict[str, Template] = {
            tid: Template(tid, name, "dynamic" if tid.startswith("d-") else "legacy", now)
            for tid, name in self.seed_templates.items()
        }
        self.requests: deque[dict[str, Any]] = deque(maxlen=self.max_recorded_requests)
        self.next_request_number = 1

    def now(self) -> float:
        return self.clock()

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    # -- contacts --------------------------------------------------------------------------

    def find_contact(self, kind: str, value: str) -> Contact | None:
        contact_id = self.identity_index.get((kind, value))
        return None if contact_id is None else self.contacts.get(contact_id)

    def index_contact(self, contact: Contact) -> None:
        for kind, value in contact.identifiers.items():
            self.identity_index[(kind, value)] = contact.id

    def remove_contact(self, contact_id: str) -> bool:
        contact = self.contacts.pop(contact_id, None)
        if contact is None:
            return False
        for kind, value in contact.identifiers.items():
            self.identity_index.pop((kind, value), None)
        return True

    def list_members(self, list_id: str) -> list[Contact]:
        return [c for c in self.contacts.values() if list_id in c.list_ids]

    def field_by_name(self, name: str) -> FieldDefinition | None:
        lowered = name.lower()
        return next((f for f in self.custom_fields.values() if f.name.lower() == lowered), None)

    # -- suppressions ----------------------------------------------------------------------

    def is_suppressed(self, email: str, group_id: int | None) -> bool:
        email = email.lower()
        if email in self.global_suppressions:
            return True
        group = self.groups.get(group_id) if group_id is not None else None
        return group is not None and email in group.members

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
        for job in list(self.jobs.values()):  # dicts keep insertion order: jobs run as accepted
            if job.status == "pending" and (force or job.due_at <= now):
                job.run(self, job)
                job.finished_at = self.now()
                ran += 1
        return ran

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
