"""The outbox: an email, SMS or campaign send goes out at most once per key (its Segment messageId).

Before a message goes out, its key is written to the mail guard (the journal's ``mail_sends``
table in delivery). A key already marked sent is not sent again (its event is delivered); a key
whose earlier attempt has no known end — the process died, or the request timed out after it was
sent — is held for review, since the API may have taken it. Only an operator's replay sends a
held message. A request that surely never arrived (connection refused) or that the API refused
(4xx, 429) is safe to send again. Every destination that sends messages (SendGrid's mail, Twilio's
SMS, Dotdigital's sends) goes through these few functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sgbridge.actions.executor import Context
from sgbridge.actions.http import Transient
from sgbridge.actions.results import HELD, OK, RETRY, Item, OpResult

SENT, UNSENT, UNKNOWN = "sent", "unsent", "unknown"
HELD_REASON = ("the outcome of an earlier send is unknown ({}); check the provider's activity for this message "
               "before replaying it (sgbridge dead-letters replay) — a replay sends it again")
Outcomes = dict[str, tuple[str, str | None]]  # key -> (state, provider's message id or the reason)


def earlier_result(state: str | None, replay: bool) -> OpResult | None:
    """What a key's earlier attempt decides, before any request: None to send."""
    if state == SENT:
        return OpResult(OK, "already sent for this messageId; not sent again", 200)
    if state == UNKNOWN and not replay:
        return OpResult(HELD, HELD_REASON.format("an earlier attempt did not finish"))
    return None


def after_transient(key: str, exc: Transient, outcomes: Outcomes) -> OpResult:
    """A send that failed transiently: a 429 or a refused connection was not taken (tried again);
    anything else (a 5xx, a timeout after sending) may have been: held."""
    if exc.status == 429 or not exc.sent:
        outcomes[key] = (UNSENT, None)
        return OpResult(RETRY, exc.reason, exc.status, after=exc.after)
    outcomes[key] = (UNKNOWN, exc.reason)
    return OpResult(HELD, HELD_REASON.format(exc.reason), exc.status)


async def run_guarded(items: list[Item], ctx: Context, key: Callable[[Item], str],
                      send: Callable[[Item, Outcomes], Awaitable[None]]) -> None:
    """Send each item once per key, side by side; the outcomes go to the mail guard."""
    keys = [key(i) for i in items if key(i)]
    earlier = await ctx.mail_guard.begin(keys)
    to_send: list[Item] = []
    seen: set[str] = set()
    for item in items:
        k = key(item)
        decided = earlier_result(earlier.get(k), ctx.replay) if k else None
        if k and k in seen:
            decided = OpResult(OK, "already sent for this messageId; not sent again", 200)
        if decided is not None:
            item.settle(decided)
        else:
            to_send.append(item)
        seen.add(k)
    outcomes: Outcomes = {}
    await asyncio.gather(*(send(item, outcomes) for item in to_send))
    await ctx.mail_guard.finish(outcomes)
