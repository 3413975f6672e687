"""One outcome vocabulary for every delivery: a destination classifies, the worker acts.

Every (event, destination) pair ends in exactly one of these. ``Retry`` and ``Refused`` are
the non-final ones; past the configured maximum age the worker turns them into ``Rejected``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Delivered:
    status_code: int = 200
    # (seq, reason) of events the destination refused one by one while it delivered the others
    # (an API that answers per event); they are rejected. A batch refused as a whole is a
    # ``Refused`` instead, and the worker finds the event at fault (delivery/search.py).
    refused: tuple[tuple[int, str], ...] = ()
    response: str = ""  # the start of the answer's body, for the attempt log (the console's event page)


@dataclass(frozen=True, slots=True)
class Retry:
    reason: str
    after: float | None = None  # seconds the server asked us to wait (Retry-After), if any
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """The destination could not take this batch, for something that may lie in one of its events
    (the warehouse refused the load; preparing or sending it raised). The worker splits the batch
    to find the event at fault, and rejects an event only on proof (see delivery/search.py)."""

    reason: str
    kind: str  # the error's class: the same kind twice on one event alone is part of the proof
    # Failed before the destination was reached (the warehouse's rows were being built): the
    # event is at fault, whether or not the destination takes anything else.
    local: bool = False


@dataclass(frozen=True, slots=True)
class Dropped:
    reason: str


Outcome = Delivered | Retry | Rejected | Refused | Dropped

# Names stored in the journal's outcome rows and shown by the CLI.
DELIVERED = "delivered"
RETRYING = "retrying"
REJECTED = "rejected"
# An email whose send may or may not have happened: an operator decides (replay sends it again).
HELD = "held"
DROPPED = "dropped"
PENDING = "pending"
REPLAY_REQUESTED = "replay_requested"
