"""Records that travel between the stages. Plain slotted dataclasses: cheap at 50,000/s."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class InboundEvent:
    """One event of a verified request, ready to be appended to the journal."""

    source: str
    event_type: str
    id_key: bytes | None  # hash of (source, sg_event_id); None when SendGrid sent no id
    fp_key: bytes  # hash of (source, content without sg_event_id): SendGrid may change the id
    body: bytes  # the event object as JSON


@dataclass(slots=True)
class InboundRequest:
    source: str
    received_at: float
    body_bytes: int  # size of the body as received (after gzip); each event keeps its own bytes
    events: list[InboundEvent] = field(default_factory=list)


@dataclass(slots=True)
class StoredEvent:
    seq: int
    source: str
    event_type: str
    received_at: float
    key: bytes  # id_key, or fp_key when the event had no sg_event_id: the delivery id's root
    body: bytes


@dataclass(slots=True)
class AppendResult:
    accepted: int
    duplicates: int
    request_id: int


@dataclass(slots=True)
class Window:
    """A contiguous range of the log claimed by one worker for one destination."""

    claim_id: int
    destination: str
    seq_lo: int
    seq_hi: int
    events: list[StoredEvent]
    replay_ids: list[int] = field(default_factory=list)  # set for windows made of dead-letter replays


@dataclass(slots=True)
class AttemptRecord:
    destination: str
    started_at: float
    duration_ms: float
    url: str
    status_code: int | None
    outcome: str
    detail: str
    seqs: list[int]


@dataclass(slots=True)
class OutcomeRecord:
    seq: int
    status: str  # outcomes.DROPPED / REJECTED / DELIVERED (after a replay)
    reason: str
    status_code: int | None = None
