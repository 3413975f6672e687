"""``POST /v3/mail/send`` (tsg_mail_v3, sendgrid-api.md §3.8).

Accepted sends answer ``202`` with an empty body and an ``X-Message-Id`` header (the prefix of
every ``sg_message_id`` its events will carry) and are recorded for ``/_emulator/mail``.
Beyond the schema, the emulator enforces the documented rules a bridge can break: at least one
personalization with a ``to``; valid and, per personalization, unique addresses; a subject and
content unless a template is used; ``template_id`` must exist; no ``substitutions`` with a
dynamic template; ``send_at`` at most 72 hours ahead; string ``custom_args`` of at most 10,000
bytes; reserved headers; base64 attachments; 30 MB in total. ``mail_settings.sandbox_mode``
validates without sending and answers 200, as SendGrid does.

Recipients on a suppression list are accepted and recorded as ``dropped``, with the reason of
SendGrid's ``dropped`` event: the bounce list ("Bounced Address"), spam reports ("Spam Reporting
Address"), invalid e-mails ("Invalid"), the global unsubscribes or the message's ``asm.group_id``
group ("Unsubscribed Address"). ``mail_settings`` bypass filters skip them as documented:
``bypass_list_management`` all of them, ``bypass_bounce_management`` / ``bypass_spam_management``
one list each, ``bypass_unsubscribe_management`` the global unsubscribes only (not groups).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

import orjson
from starlette.responses import Response

from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.util import ApiError, FieldError, empty_response, is_valid_email, iso

MAX_SCHEDULE_SECONDS = 72 * 3600
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_RECIPIENTS = 1000
MAX_MESSAGE_BYTES = 30 * 1024 * 1024
RESERVED_HEADERS = frozenset({
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type", "content-transfer-encoding",
    "to", "from", "subject", "reply-to", "cc", "bcc",
})
INVALID_ADDRESS = "Does not contain a valid address."


def _enabled(settings: Any, name: str) -> bool:
    return isinstance(settings, dict) and isinstance(settings.get(name), dict) and settings[name].get("enable") is True


def _custom_args_errors(args: Any, where: str) -> list[FieldError]:
    if args is None:
        return []
    if any(not isinstance(v, str) for v in args.values()):
        return [FieldError(where, "custom_args values must be strings")]
    if len(orjson.dumps(args)) > MAX_CUSTOM_ARGS_BYTES:
        return [FieldError(where, f"custom_args may not exceed {MAX_CUSTOM_ARGS_BYTES} bytes")]
    return []


def _personalization_errors(i: int, p: dict[str, Any], dynamic: bool) -> list[FieldError]:
    where = f"personalizations.{i}"
    errors: list[FieldError] = []
    if not p.get("to"):
        errors.append(FieldError(f"{where}.to", "The to array is required for all personalization objects, "
                                 "and must have at least one email object with a valid email address."))
    seen: set[str] = set()
    total = 0
    for kind in ("to", "cc", "bcc"):
        for j, recipient in enumerate(p.get(kind) or []):
            total += 1
            address = recipient.get("email")
            if not is_valid_email(address):
                errors.append(FieldError(f"{where}.{kind}.{j}.email", INVALID_ADDRESS))
            elif address.lower() in seen:
                errors.append(FieldError(f"{where}.{kind}", "Each email address in the personalization block "
                                         f"should be unique between to, cc, and bcc: {address}"))
            else:
                seen.add(address.lower())
    if total > MAX_RECIPIENTS:
        errors.append(FieldError(where, f"a personalization may have at most {MAX_RECIPIENTS} recipients"))
    if dynamic and p.get("substitutions"):
        errors.append(FieldError(f"{where}.substitutions", "Substitutions may not be used with dynamic templating"))
    if "from" in p and not is_valid_email(p["from"].get("email")):
        errors.append(FieldError(f"{where}.from.email", INVALID_ADDRESS))
    errors += _custom_args_errors(p.get("custom_args"), f"{where}.custom_args")
    return errors


def _check(call: Call, body: dict[str, Any]) -> list[FieldError]:
    state = call.state
    errors: list[FieldError] = []
    personalizations: list[dict[str, Any]] = body["personalizations"]
    if not personalizations:
        errors.append(FieldError("personalizations", "The personalizations field is required and must have at "
                                 "least one personalization."))
    template_id = body.get("template_id")
    if template_id is not None and template_id not in state.templates:
        errors.append(FieldError("template_id", f"template_id '{template_id}' does not exist"))
    dynamic = isinstance(template_id, str) and template_id.startswith("d-")
    for i, p in enumerate(personalizations):
        errors += _personalization_errors(i, p, dynamic)
    if not is_valid_email(body["from"].get("email")):
        errors.append(FieldError("from.email", INVALID_ADDRESS))
    if "reply_to" in body and "reply_to_list" in body:
        errors.append(FieldError("reply_to", "reply_to and reply_to_list are mutually exclusive"))
    replies = [body["reply_to"]] if "reply_to" in body else body.get("reply_to_list", [])
    errors += [FieldError("reply_to.email", INVALID_ADDRESS) for r in replies if not is_valid_email(r.get("email"))]
    if template_id is None and not body.get("subject") and not all(p.get("subject") for p in personalizations):
        errors.append(FieldError("subject", "The subject is required. You can get around this requirement if you "
                                 "use a template with a subject defined or if every personalization has a subject "
                                 "defined."))
    if template_id is None and not body.get("content"):
        errors.append(FieldError("content", "Unless a valid template_id is provided, the content parameter is "
                                 "required. There must be at least one defined content block."))
    errors += _custom_args_errors(body.get("custom_args"), "custom_args")
    latest = state.now() + MAX_SCHEDULE_SECONDS
    for where, at in [("send_at", body.get("send_at"))] + [
        (f"personalizations.{i}.send_at", p.get("send_at")) for i, p in enumerate(personalizations)
    ]:
        if at is not None and at > latest:
            errors.append(FieldError(where, "send_at can't be more than 72 hours in the future"))
    for name in body.get("headers") or {}:
        if name.lower() in RESERVED_HEADERS:
            errors.append(FieldError(f"headers.{name}", f"the header '{name}' is reserved and cannot be set"))
    for i, attachment in enumerate(body.get("attachments") or []):
        try:
            base64.b64decode(attachment["content"], validate=True)
        except (binascii.Error, ValueError):
            errors.append(FieldError(f"attachments.{i}.content", "The attachment content must be base64 encoded."))
    return errors


def _recipients(call: Call, body: dict[str, Any]) -> list[dict[str, Any]]:
    state = call.state
    settings = body.get("mail_settings")
    bypass = frozenset(name for name in ("bypass_list_management", "bypass_bounce_management",
                                         "bypass_spam_management", "bypass_unsubscribe_management")
                       if _enabled(settings, name))
    group_id = (body.get("asm") or {}).get("group_id")
    now = state.now()
    recipients: list[dict[str, Any]] = []
    for i, p in enumerate(body["personalizations"]):
        send_at = p.get("send_at", body.get("send_at"))
        custom_args = {**(body.get("custom_args") or {}), **(p.get("custom_args") or {})}
        for kind in ("to", "cc", "bcc"):
            for recipient in p.get(kind) or []:
                email = recipient["email"].lower()
                reason = state.drop_reason(email, group_id, bypass)
                status = "dropped" if reason else ("scheduled" if send_at and send_at > now else "processed")
                recipients.append({
                    "email": email, "type": kind, "personalization": i, "status": status, "reason": reason,
                    "send_at": send_at, "custom_args": custom_args,
                })
    return recipients


def send_mail(call: Call) -> Response:
    body = call.body
    if len(orjson.dumps(body)) > MAX_MESSAGE_BYTES:
        raise ApiError(413, FieldError(None, "content too large"))
    errors = _check(call, body)
    if errors:
        raise ApiError(400, errors)
    if _enabled(body.get("mail_settings"), "sandbox_mode"):
        return empty_response(200)  # validated, not sent, no message id
    message_id = secrets.token_urlsafe(16)[:22]  # the shape of real ids: 22 base64url characters
    call.state.messages.append({
        "message_id": message_id,
        "received_at": iso(call.state.now()),
        "host": call.request.headers.get("host"),
        "from": body["from"],
        "subject": body.get("subject"),
        "template_id": body.get("template_id"),
        "categories": body.get("categories", []),
        "custom_args": body.get("custom_args", {}),
        "asm": body.get("asm"),
        "send_at": body.get("send_at"),
        "batch_id": body.get("batch_id"),
        "recipients": _recipients(call, body),
        "request": body,
    })
    return empty_response(202, {"X-Message-Id": message_id})


ENDPOINTS = [Endpoint("POST", "/v3/mail/send", send_mail, ("mail.send",))]
