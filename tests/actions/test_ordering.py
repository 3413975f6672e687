"""Which operations of one contact may overtake each other, and the order across windows."""

from __future__ import annotations

import asyncio

import pytest

from sgbridge.actions.executor import commutes
from sgbridge.actions.operations import HttpCall, ListRemoval, MailSend, PlannedEvent, SuppressionChange, Upsert
from sgbridge.actions.ordering import WindowLocks

EMAIL = {"email": "a@example.com"}


def mail(to: str = "a@example.com") -> MailSend:
    return MailSend({"personalizations": [{"to": [{"email": to}]}]}, "m")


@pytest.mark.parametrize(("later", "earlier", "expected"), [
    (Upsert(dict(EMAIL), ("L",)), ListRemoval("L", EMAIL), False),  # add after remove: stays after
    (Upsert(dict(EMAIL), ("M",)), ListRemoval("L", EMAIL), True),   # another list: free
    (Upsert(dict(EMAIL)), Upsert(dict(EMAIL)), False),              # later values win
    (ListRemoval("L", EMAIL), ListRemoval("M", EMAIL), True),
    (SuppressionChange("a@example.com", 1, True), SuppressionChange("a@example.com", 1, False), False),
    (SuppressionChange("a@example.com", 1, True), SuppressionChange("a@example.com", 2, False), True),
    (SuppressionChange("a@example.com", None, True), mail(), False),  # unsubscribe after the email
    (SuppressionChange("a@example.com", None, True), mail("b@example.com"), True),
    (mail(), Upsert(dict(EMAIL)), True),
    (HttpCall("POST", "u", {}, {}), HttpCall("POST", "u", {}, {}), False),
    (HttpCall("POST", "u", {}, {}), Upsert(dict(EMAIL)), True),
])
def test_commutes(later: object, earlier: object, expected: bool) -> None:
    assert commutes(later, earlier) is expected  # type: ignore[arg-type]


def _event(ref: int, email: str) -> PlannedEvent:
    return PlannedEvent(ref, [Upsert({"email": email})])


@pytest.mark.anyio
async def test_window_locks_hold_only_shared_keys() -> None:
    locks = WindowLocks()
    assert locks.register(1, [_event(1, "a@x.io"), _event(2, "b@x.io")]) == {}
    waits = locks.register(2, [_event(3, "A@x.io"), _event(4, "c@x.io")])  # emails compare case-insensitively
    assert list(waits) == [0]
    gate = asyncio.gather(*waits[0])
    await asyncio.sleep(0)
    assert not gate.done()
    locks.release(1)
    await asyncio.wait_for(gate, 1)
    locks.release(2)
    assert locks.register(3, [_event(5, "a@x.io")]) == {}  # released keys are free again
