"""What one emulated Dotdigital account holds, and the asynchronous parts of its API.

Enrolments and campaign sends are asynchronous at Dotdigital: ``POST /v2/programs/enrolments``
answers ``Processing`` and ``POST /v2/campaigns/send`` a send whose status moves through
``Scheduled``/``Sending`` to ``Sent`` (v2 spec enums ``ApiProgramEnrolmentStatus`` and
``ApiCampaignSendStatuses``). Here they advance lazily on the injectable clock: ``tick()`` runs
before every API call and every inspection, so a test with a fake clock sees exactly the
status a client would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DATA_FIELD_TYPES = ("String", "Numeric", "Date", "Boolean")
PROGRAM_STATUSES = ("Draft", "Deactivated", "Active", "ReadOnly")
MAX_RECORDED_REQUESTS = 10_000


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class DataField:
    name: str
    type: str = "String"
    visibility: str = "Private"
    default: Any = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "visibility": self.visibility, "defaultValue": self.default}


@dataclass
class Contact:
    contact_id: int
    created: float
    updated: float
    email: str | None = None
    mobile: str | None = None  # digits only, as Dotdigital stores E.164 without the "+"
    email_status: str | None = None  # None: no email channel
    email_type: str = "Html"
    opt_in_type: str = "Single"
    sms_status: str | None = None
    data_fields: dict[str, Any] = field(default_factory=dict)
    lists: dict[int, str] = field(default_factory=dict)  # list id -> membership status


@dataclass
class AddressBook:
    id: int
    name: str
    visibility: str = "Private"


@dataclass
class Program:
    id: int
    name: str
    status: str = "Active"
    created: float = 0.0


@dataclass
class Campaign:
    id: int
    name: str
    subject: str = ""
    from_name: str = ""
    status: str = "Unsent"


@dataclass
class Enrolment:
    id: str
    program_id: int
    contacts: list[int]
    address_books: list[int]
    created: float
    ready_at: float
    status: str = "Processing"
    faults: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CampaignSend:
    id: str
    campaign_id: int
    contact_ids: list[int]
    address_book_ids: list[int]
    requested: float
    send_at: float  # when it starts sending (now, sendDate, or the optimised time)
    send_time_optimised: bool
    send_date: str | None
    status: str = "Scheduled"


class DotdigitalState:
    def __init__(self, *, job_delay_seconds: float = 1.0, clock: Callable[[], float] = time.time,
                 default_email_status: str = "subscribed") -> None:
        self.job_delay = job_delay_seconds
        self.clock = clock
        self.default_email_status = default_email_status
        self.reset()

    def reset(self) -> None:
        self.data_fields: dict[str, DataField] = {}  # upper-cased name -> field
        self.contacts: dict[int, Contact] = {}
        self.by_email: dict[str, int] = {}
        self.by_mobile: dict[str, int] = {}
        self.address_books: dict[int, AddressBook] = {}
        self.programs: dict[int, Program] = {}
        self.campaigns: dict[int, Campaign] = {}
        self.enrolments: dict[str, Enrolment] = {}
        self.sends: dict[str, CampaignSend] = {}
        self.emails: list[dict[str, Any]] = []  # transactional emails
        self.challenges: list[dict[str, Any]] = []  # resubscribe confirmation emails
        self.sms: list[dict[str, Any]] = []  # v2 send-to and CPaaS messages
        self.requests: list[dict[str, Any]] = []
        self._next_contact = 1001
        self._next_book = 500001

    def now(self) -> float:
        return self.clock()

    # -- contacts --------------------------------------------------------------------------

    def new_contact(self) -> Contact:
        now = self.now()
        contact = Contact(self._next_contact, now, now)
        self._next_contact += 1
        self.contacts[contact.contact_id] = contact
        return contact

    def find(self, identifier: str, value: str) -> Contact | None:
        if identifier == "email":
            cid = self.by_email.get(value.lower())
        elif identifier == "mobileNumber":
            cid = self.by_mobile.get(value.lstrip("+"))
        else:  # contactId
            cid = int(value) if value.isdigit() else None
        return self.contacts.get(cid) if cid is not None else None

    def set_email(self, contact: Contact, email: str | None) -> None:
        if contact.email:
            self.by_email.pop(contact.email.lower(), None)
        contact.email = email
        if email:
            self.by_email[email.lower()] = contact.contact_id

    def set_mobile(self, contact: Contact, mobile: str | None) -> None:
        if contact.mobile:
            self.by_mobile.pop(contact.mobile, None)
        contact.mobile = mobile
        if mobile:
            self.by_mobile[mobile] = contact.contact_id

    def delete_contact(self, contact: Contact) -> None:
        self.set_email(contact, None)
        self.set_mobile(contact, None)
        del self.contacts[contact.contact_id]

    # -- lists, programs, campaigns ---------------------------------------------------------

    def add_address_book(self, name: str, visibility: str = "Private", book_id: int | None = None) -> AddressBook:
        if book_id is None:
            book_id = self._next_book
        self._next_book = max(self._next_book, book_id) + 1
        book = AddressBook(book_id, name, visibility)
        self.address_books[book_id] = book
        return book

    def members(self, book_id: int) -> list[Contact]:
        return [c for c in self.contacts.values() if book_id in c.lists]

    # -- asynchronous work ------------------------------------------------------------------

    def add_enrolment(self, program_id: int, contacts: list[int], books: list[int]) -> Enrolment:
        now = self.now()
        enrolment = Enrolment(str(uuid.uuid4()), program_id, contacts, books, now, now + self.job_delay)
        enrolment.faults = [{"contactId": cid, "reason": "ContactNotFound"}
                            for cid in contacts if cid not in self.contacts]
        self.enrolments[enrolment.id] = enrolment
        self.tick()
        return enrolment

    def add_send(self, campaign_id: int, contacts: list[int], books: list[int], send_at: float | None,
                 send_date: str | None, optimised: bool) -> CampaignSend:
        now = self.now()
        start = now if send_at is None else max(now, send_at)
        if optimised:  # "the most appropriate time based upon their previous opens": some time later
            start = now + self.job_delay
        send = CampaignSend(str(uuid.uuid4()), campaign_id, contacts, books, now, start, optimised, send_date)
        self.sends[send.id] = send
        self.tick()
        return send

    def tick(self) -> None:
        now = self.now()
        for enrolment in self.enrolments.values():
            if enrolment.status == "Processing" and now >= enrolment.ready_at:
                enrolment.status = "Finished"
        for send in self.sends.values():
            if send.status in ("Scheduled", "Sending"):
                if now >= send.send_at + self.job_delay:
                    send.status = "Sent"
                elif now >= send.send_at:
                    send.status = "Sending"

    def run_all(self) -> int:
        """Finish every pending enrolment and send now; answers how many were finished."""
        done = 0
        for enrolment in self.enrolments.values():
            if enrolment.status == "Processing":
                enrolment.status, done = "Finished", done + 1
        for send in self.sends.values():
            if send.status != "Sent":
                send.status, done = "Sent", done + 1
        return done

    def record_request(self, entry: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(entry)
        if len(self.requests) > MAX_RECORDED_REQUESTS:
            del self.requests[: len(self.requests) - MAX_RECORDED_REQUESTS]
        return entry
