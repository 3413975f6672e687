"""What an action asks the API to do for one event, before anything is sent.

Actions turn a payload into operations; the executor (``actions.executor``) runs the
operations of many events together: it coalesces contact upserts, orders each contact's
operations, batches requests and maps the answers back to events. Keeping the two apart is
what lets ``sgbridge actions test`` and the delivery engine share one implementation.

An operation's ``phase`` fixes the order inside one round of execution: upserts, then list
removals, suppression additions, suppression removals, mail, webhook calls. A contact whose next
operation has a lower phase than its previous one waits for the next round, so "remove from
list, then add again" still ends in the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IDENTIFIER_KINDS = ("email", "phone_number_id", "external_id", "anonymous_id")


class Invalid(Exception):
    """The event cannot be sent as mapped (Segment's PayloadValidationError / IntegrationError)."""

    def __init__(self, message: str, code: str = "PAYLOAD_VALIDATION_FAILED", status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class Skip(Exception):
    """The event is not for this action (not an audience change, say): dropped, not an error."""


@dataclass
class Upsert:
    """``PUT /v3/marketing/contacts`` of one contact row."""

    row: dict[str, Any]
    list_ids: tuple[str, ...] = ()
    strict_custom_fields: bool = True  # unknown custom field names reject the event (Upsert Contact)
    send_empty_lists: bool = False  # sync audience sends "list_ids": [] on its removal upserts
    phase: int = 0

    def identifiers(self) -> dict[str, str]:
        return {k: str(self.row[k]) for k in IDENTIFIER_KINDS if self.row.get(k) not in (None, "")}


@dataclass
class ListRemoval:
    """Search the contact by its identifiers, then ``DELETE /v3/marketing/lists/{id}/contacts``."""

    list_id: str
    identifier_values: dict[str, str]
    phase: int = 1

    def identifiers(self) -> dict[str, str]:
        return self.identifier_values


@dataclass
class SuppressionChange:
    email: str
    group_id: int | None  # None: the global unsubscribe list
    add: bool

    @property
    def phase(self) -> int:
        return 2 if self.add else 3

    def identifiers(self) -> dict[str, str]:
        return {"email": self.email.lower()}


@dataclass
class MailSend:
    body: dict[str, Any]
    key: str  # the Segment messageId: one email per key, ever
    phase: int = 4

    def identifiers(self) -> dict[str, str]:
        to = self.body["personalizations"][0]["to"][0]["email"]
        return {"email": str(to).lower()}


@dataclass
class HttpCall:
    """The webhook action: one JSON request, or one element of a batched array."""

    method: str
    url: str
    headers: dict[str, str]
    data: Any
    shared_secret: str | None = None
    batch_size: int = 0
    phase: int = 5
    batch_key: tuple[Any, ...] = field(default=())
    batched: bool = True  # sent in an array with the others of its batch key (performBatch)

    def identifiers(self) -> dict[str, str]:
        return {}


@dataclass
class DotdigitalStep:
    """One Dotdigital action for one event: its requests depend on each other (find the contact,
    then act on its id), so the whole action is one operation, run in the contact's order."""

    action: str
    payload: dict[str, Any]
    identity: dict[str, str]
    key: str = ""  # the Segment messageId of a send (email, SMS, campaign): sent once, ever
    phase: int = 6

    def identifiers(self) -> dict[str, str]:
        return self.identity


@dataclass
class TwilioMessage:
    """One SMS through Twilio's Messages API (the form it posts)."""

    form: dict[str, Any]
    key: str  # the Segment messageId: one message per key, ever
    phase: int = 7

    def identifiers(self) -> dict[str, str]:
        return {"phone": str(self.form.get("To"))}


Operation = Upsert | ListRemoval | SuppressionChange | MailSend | HttpCall | DotdigitalStep | TwilioMessage


@dataclass
class PlannedEvent:
    """One event's operations (or why it cannot be sent); ``ref`` is its index or journal seq."""

    ref: int
    operations: list[Operation] = field(default_factory=list)
    invalid: Invalid | None = None
    skipped: str | None = None  # why no subscription applies (dropped, not an error)
    order_key: str | None = None  # extra ordering identity (the Segment userId / anonymousId)
    # Where each subscription's operations end in ``operations``: one action's steps are a chain,
    # and a refused step ends its chain (Segment's action stops at the first error it throws).
    chain_ends: list[int] = field(default_factory=list)

    def chain_of(self, index: int) -> int:
        for chain, end in enumerate(self.chain_ends):
            if index < end:
                return chain
        return len(self.chain_ends)
