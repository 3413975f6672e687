"""What the delivery worker needs from a destination that sends batches of log events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from sgbridge.model import OutcomeRecord, StoredEvent
from sgbridge.outcomes import Outcome


class Message(Protocol):
    seq: int
    received_at: float


class Batch(Protocol):
    @property
    def messages(self) -> list[Message]: ...


class BatchDestination(Protocol):
    """Optional attributes the worker reads: ``exclusive`` (one window in flight across every
    process) and ``claims_bodies`` (False: windows come without the events' keys and bodies, which
    the destination reads itself, a chunk at a time, with ``Journal.with_bodies``)."""

    name: str

    @property
    def stream(self) -> int | None:
        """The journal stream it reads (journal/streams.py; None: both); claims touch no other row."""
        ...

    def consumes(self, source: str) -> bool:
        """Whether events of this journal source are for this destination at all (others pass by)."""
        ...

    # Batches are the destination's own type; the worker only reads ``batch.messages``.
    def prepare(self, events: list[StoredEvent]) -> tuple[list[Any], list[OutcomeRecord]]:
        """Map events into batches ready to send, plus the events that will not be sent."""
        ...

    def split(self, batch: Any) -> list[Any]:
        """Halve a batch the API refused as a whole, to find the event it objects to."""
        ...

    async def send(self, batch: Any) -> Outcome: ...


class SettledEvent(Protocol):
    seq: int
    record: OutcomeRecord | None  # the final outcome row; None for "delivered" (the cursor's default)
    retry: bool
    after: float | None
    reason: str


@runtime_checkable
class EventDestination(Protocol):
    """A destination that settles each event on its own (the action destinations)."""

    name: str

    @property
    def stream(self) -> int | None: ...

    def consumes(self, source: str) -> bool: ...

    def plan(self, event: StoredEvent) -> Any:
        """Map one event (no side effects); the worker calls it per event, and an event whose
        planning raises is rejected alone (delivery/search.py)."""
        ...

    def begin(self, window: int, planned: Sequence[Any]) -> None:
        """A window was claimed and planned (called in claim order, before any await)."""
        ...

    def end(self, window: int) -> None:
        """The window is settled (or abandoned): whatever ``begin`` held is released."""
        ...

    async def deliver(self, events: Sequence[StoredEvent], replay: bool = False,
                      window: int | None = None) -> Sequence[SettledEvent]: ...
