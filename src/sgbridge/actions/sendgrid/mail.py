"""``POST /v3/mail/send``: never twice for one Segment ``messageId`` (``actions.outbox``)."""

from __future__ import annotations

from sgbridge.actions.executor import Context
from sgbridge.actions.operations import MailSend
from sgbridge.actions.outbox import SENT, UNSENT, Outcomes, after_transient, run_guarded
from sgbridge.actions.results import OK, REJECTED, Item, OpResult
from sgbridge.actions.sendgrid.api import Transient, rejection


async def _send(item: Item, ctx: Context, outcomes: Outcomes) -> None:
    op = item.op
    assert isinstance(op, MailSend)
    try:
        response = await ctx.api.call("POST", "/v3/mail/send", body=op.body, owners=[item.event.ref])
    except Transient as exc:
        item.settle(after_transient(op.key, exc, outcomes))
        return
    if response.status_code < 300:
        message_id = response.headers.get("x-message-id")
        outcomes[op.key] = (SENT, message_id)
        item.settle(OpResult(OK, status=response.status_code, detail={"sg_message_id": message_id}))
        return
    outcomes[op.key] = (UNSENT, None)
    failure = rejection(response, "mail send")
    item.settle(OpResult(REJECTED, failure.reason, failure.status))


def _key(item: Item) -> str:
    assert isinstance(item.op, MailSend)
    return item.op.key


async def run_mail(items: list[Item], ctx: Context) -> None:
    await run_guarded(items, ctx, _key, lambda item, outcomes: _send(item, ctx, outcomes))
