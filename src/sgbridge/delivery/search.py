"""Finding the event at fault when a destination cannot take a batch, for every destination.

The rule: **an event that a destination cannot prepare or send is rejected alone, with its
reason, as a dead letter, and the rest of its window goes on.** A transient fault (network,
5xx, timeouts, a server out of memory: delivery/faults.py) is retried and never rejects anything.

How the worker applies it:

- **Preparing** (mapping, serialising: local work, no destination involved). A window whose
  preparation raises is prepared again event by event; an event that fails alone, twice, with
  the same error, is rejected; the others go on (``DeliveryWorker._prepare``).
- **A batch refused by the API with HTTP 400** is halved until the event at fault is alone; the
  API's answer about one event is its verdict (``Rejected`` with status 400).
- **A batch refused for a reason that may be one event's** (``Refused``: the warehouse refused
  the load; sending raised something other than a transient fault) is halved the same way, and
  an event is rejected only on proof: refused alone twice, with the same kind of error, and either
  some other part of the window taken by the destination (loaded in this search, or found there
  already), or the failure came before the destination was reached (``Refused.local``: rows that
  could not be built). Between its two tries the event waits until the rest of the window has
  been tried, and at least one backoff delay when nothing else is left. A transient fault at the
  single-event load therefore cannot make a dead letter of a good event, and a destination that
  refuses everything (a permission taken away) delays the window instead of rejecting it.
- **A budget** bounds the search: it stops, and the window waits (backoff, until the maximum age)
  after more refusals than a few bad events explain — in a row, twice the halvings from the
  window down to one event, plus two; in all, four times that plus eight, and as many again for
  each event found. A table that refuses many events is for an operator to fix; its events wait
  for that, rather than becoming dead letters one by one.

The warehouse used to run this search itself (destinations/warehouse.py); it is the same search,
now in the engine, for every batch destination. Action destinations settle events one by one:
planning is guarded per event, and a ``deliver`` that raises is halved the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from sgbridge.outcomes import Refused


class Step(Enum):
    SPLIT = "split"  # halve the batch and try each half
    AGAIN = "again"  # one event, refused once: try it again after the rest of the window
    REJECT = "reject"  # one event, proven at fault: a dead letter
    WAIT = "wait"  # no proof, or the budget is spent: the window waits (backoff), like a Retry


@dataclass(slots=True)
class Search:
    """The state of one window's search for the events a destination refuses."""

    refusals_allowed: int  # in a row: more than one bad event explains
    attempts_left: int  # in all: more than a few bad events need
    per_event: int  # budget given back for each event found
    refused_in_a_row: int = 0
    taken: bool = False  # some part of the window is in the destination (taken now, or before)
    spent: bool = False  # the budget ran out: no more splitting or verdicts for this window
    suspects: dict[int, str] = field(default_factory=dict)  # seq -> kind of its first refusal alone

    @classmethod
    def for_window(cls, events: int) -> Search:
        halvings = max(1, events).bit_length()
        return cls(refusals_allowed=2 * halvings + 2, attempts_left=4 * halvings + 8, per_event=3 * halvings + 4)

    def took(self) -> None:
        self.taken, self.refused_in_a_row = True, 0

    def refused(self, seqs: list[int], outcome: Refused) -> Step:
        self.attempts_left -= 1
        self.refused_in_a_row += 1
        if self.spent or self.refused_in_a_row > self.refusals_allowed or self.attempts_left <= 0:
            self.spent = True
            return Step.WAIT
        if len(seqs) > 1:
            return Step.SPLIT
        seq = seqs[0]
        if self.suspects.get(seq) != outcome.kind:
            self.suspects[seq] = outcome.kind
            return Step.AGAIN
        if outcome.local or self.taken:
            del self.suspects[seq]
            self.attempts_left += self.per_event
            self.refused_in_a_row = 0
            return Step.REJECT
        return Step.WAIT
