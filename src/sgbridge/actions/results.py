"""How one operation, and then one event, ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sgbridge.actions.operations import Operation, PlannedEvent

OK, REJECTED, RETRY, HELD, DROPPED = "delivered", "rejected", "retry", "held", "dropped"
# When an event has several operations, the worst one decides.
_SEVERITY = {DROPPED: -1, OK: 0, RETRY: 1, HELD: 2, REJECTED: 3}


@dataclass
class OpResult:
    kind: str
    message: str = ""
    status: int | None = None
    code: str | None = None
    after: float | None = None  # seconds the API asked us to wait before retrying
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. {"sg_message_id": ...}


@dataclass
class Item:
    """One operation of one event, as the executor schedules it."""

    event: PlannedEvent
    op: Operation
    group: int
    result: OpResult | None = None
    chain: int = 0  # which of the event's actions it belongs to (PlannedEvent.chain_ends)

    def settle(self, result: OpResult) -> None:
        if self.result is None or _SEVERITY[result.kind] >= _SEVERITY[self.result.kind]:
            self.result = result


@dataclass
class EventResult:
    ref: int
    kind: str
    message: str = ""
    status: int | None = None
    code: str | None = None
    after: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_multistatus(self) -> dict[str, Any]:
        """Segment's MultiStatus entry for this event."""
        if self.kind == OK:
            return {"status": self.status or 200}
        status = self.status or (429 if self.kind == RETRY else 400)
        return {"status": status, "errortype": self.code or ("RETRYABLE_ERROR" if self.kind == RETRY else
                                                            "PAYLOAD_VALIDATION_FAILED"),
                "errormessage": self.message, "errorreporter": "INTEGRATIONS"}


def combine(ref: int, results: list[OpResult]) -> EventResult:
    if not results:
        return EventResult(ref, OK, status=200)
    worst = max(results, key=lambda r: _SEVERITY[r.kind])
    detail: dict[str, Any] = {}
    for r in results:
        detail.update(r.detail)
    status = worst.status if worst.kind != OK else 200
    return EventResult(ref, worst.kind, worst.message, status, worst.code, worst.after, detail)
