"""``POST /v3/mail/send``: never twice for one Segment ``messageId``.

Before a message goes out, its key is written to the mail guard (the journal's ``mail_sends``
table in delivery). A key already marked sent is not sent again (its event is delivered); a key
whose earlier attempt has no known end — the process died, or the request timed out after it
was sent — is held for review, since SendGrid may have accepted it. Only an operator's replay
sends a held message. A request that surely never arrived (connection refused) or that
SendGrid refused (4xx, 429) is safe to send again.
"""

from __future__ import annotations

import asyncio

from sgbridge.actions.executor import Context
from sgbridge.actions.operations import MailSend
from sgbridge.actions.results import HELD, OK, REJECTED, RETRY, Item, OpResult
from sgbridge.actions.sendgrid.api import Transient, rejection

SENT, UNSENT, UNKNOWN = "sent", "unsent", "unknown"
HELD_REASON = ("the outcome of an earlier send is unknown ({}); check SendGrid's activity for this message "
               "before replaying it (sgbridge dead-letters replay) — a replay sends it again")


async def _send(item: Item, ctx: Context, outcomes: dict[str, tuple[str, str | None]]) -> None:
    op = item.op
    assert isinstance(op, MailSend)
    try:
        response = await ctx.api.call("POST", "/v3/mail/send", body=op.body, owners=[item.event.ref])
    except Transient as exc:
        # 429 and refused connections: SendGrid did not take the message. Anything else (a timeout
        # after sending, a 5xx) may have been accepted.
        if exc.status == 429 or not exc.sent:
            outcomes[op.key] = (UNSENT, None)
            item.settle(OpResult(RETRY, exc.reason, exc.status, after=exc.after))
        else:
            outcomes[op.key] = (UNKNOWN, exc.reason)
            item.settle(OpResult(HELD, HELD_REASON.format(exc.reason), exc.status))
        return
    if response.status_code < 300:
        message_id = response.headers.get("x-message-id")
        outcomes[op.key] = (SENT, message_id)
        item.settle(OpResult(OK, status=response.status_code, detail={"sg_message_id": message_id}))
        return
    outcomes[op.key] = (UNSENT, None)
    failure = rejection(response, "mail send")
    item.settle(OpResult(REJECTED, failure.reason, failure.status))


async def run_mail(items: list[Item], ctx: Context) -> None:
    keys = [i.op.key for i in items if isinstance(i.op, MailSend) and i.op.key]
    earlier = await ctx.mail_guard.begin(keys)
    to_send: list[Item] = []
    seen: set[str] = set()
    for item in items:
        op = item.op
        assert isinstance(op, MailSend)
        state = earlier.get(op.key)
        if op.key and (op.key in seen or state == SENT):
            item.settle(OpResult(OK, "already sent for this messageId; not sent again", 200))
        elif state == UNKNOWN and not ctx.replay:
            item.settle(OpResult(HELD, HELD_REASON.format("an earlier attempt did not finish"), None))
        else:
            to_send.append(item)
        seen.add(op.key)
    outcomes: dict[str, tuple[str, str | None]] = {}
    await asyncio.gather(*(_send(item, ctx, outcomes) for item in to_send))
    await ctx.mail_guard.finish(outcomes)
