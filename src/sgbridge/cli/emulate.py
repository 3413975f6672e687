"""``sgbridge emulate …``: the shipped emulators of the external APIs."""

from __future__ import annotations

import click


@click.group()
def emulate() -> None:
    """Run a shipped emulator of an external API."""


@emulate.command("segment")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--write-key", "write_keys", multiple=True, help="Accepted write key (repeat; default: any).")
@click.option("--no-keep-messages", is_flag=True, help="Keep only ids and counters (for long benchmarks).")
@click.option("--profile-token", "profile_tokens", multiple=True, metavar="SPACE=TOKEN",
              help="Profile API access token of a space (repeat; default: any token opens any space).")
def emulate_segment(host: str, port: int, write_keys: tuple[str, ...], no_keep_messages: bool,
                    profile_tokens: tuple[str, ...]) -> None:
    """Segment Tracking API emulator (auth, limits, messageId dedupe, faults, /_emulator/*)."""
    import asyncio

    from sgbridge.emulators.segment import serve_segment_emulator

    click.echo(f"Segment emulator on http://{host}:{port} (inspect /_emulator/stats, /_emulator/messages)")
    tokens = dict(t.split("=", 1) for t in profile_tokens if "=" in t) if profile_tokens else None
    if profile_tokens and len(tokens or {}) != len(profile_tokens):
        raise click.BadParameter("use SPACE=TOKEN", param_hint="--profile-token")
    asyncio.run(serve_segment_emulator(host, port, write_keys or None, keep_messages=not no_keep_messages,
                                       log_level="warning", profile_tokens=tokens))


@emulate.command("sendgrid")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8766, show_default=True)
@click.option("--api-key", "api_keys", multiple=True, help="Accepted API key (repeat; default: any).")
@click.option("--job-delay", type=float, default=1.0, show_default=True,
              help="Seconds before contact import/delete/export jobs complete.")
@click.option("--seed-contacts", type=click.IntRange(min=0), default=0, show_default=True,
              help="Start with a generated account of N contacts (lists, segments, suppressions...); 0: empty.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated account.")
@click.option("--no-marketing-campaigns", is_flag=True,
              help="An account without Marketing Campaigns: every /v3/marketing/* endpoint answers 403.")
def emulate_sendgrid(host: str, port: int, api_keys: tuple[str, ...], job_delay: float, seed_contacts: int,
                     seed: int, no_marketing_campaigns: bool) -> None:
    """SendGrid v3 API emulator (contacts, lists, segments, exports, suppressions, mail send; OpenAPI-validated)."""
    import asyncio

    from sgbridge.emulators.sendgrid import serve_sendgrid_emulator

    if seed_contacts:
        click.echo(f"Seeding {seed_contacts} contacts (seed {seed})...")
    click.echo(f"SendGrid emulator on http://{host}:{port} (inspect /_emulator/requests, /_emulator/contacts)")
    asyncio.run(serve_sendgrid_emulator(host, port, api_keys or None, job_delay_seconds=job_delay,
                                        marketing_campaigns=not no_marketing_campaigns,
                                        seed_contacts=seed_contacts, seed=seed, log_level="warning"))


@emulate.command("sendgrid-webhook")
@click.option("--target", required=True, help="Webhook URL, e.g. http://127.0.0.1:8080/webhooks/sendgrid")
@click.option("--rate", type=float, default=1000.0, show_default=True, help="Events per second.")
@click.option("--batch-size", type=int, default=100, show_default=True)
@click.option("--duration", type=float, default=None, help="Seconds to send for.")
@click.option("--total", type=int, default=None, help="Events to send (default with no --duration: 1000).")
@click.option("--private-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM signing key; without it one is generated and its public key printed.")
@click.option("--save-private-key", type=click.Path(dir_okay=False), default=None)
@click.option("--concurrency", type=int, default=4, show_default=True)
@click.option("--duplicates", type=float, default=0.01, show_default=True, help="Fraction re-sent unchanged.")
@click.option("--changed-ids", type=float, default=0.001, show_default=True,
              help="Fraction re-sent under a new sg_event_id.")
@click.option("--gzip", "use_gzip", is_flag=True)
@click.option("--seed", type=int, default=0)
def emulate_sendgrid_webhook(target: str, rate: float, batch_size: int, duration: float | None, total: int | None,
                             private_key: str | None, save_private_key: str | None, concurrency: int,
                             duplicates: float, changed_ids: float, use_gzip: bool, seed: int) -> None:
    """Send realistic signed Event Webhook batches, with SendGrid's duplicates and retries."""
    import asyncio
    from pathlib import Path

    from sgbridge.emulators.sendgrid_webhook import run_webhook_sender

    pem = Path(private_key).read_text() if private_key else None
    asyncio.run(run_webhook_sender(
        target, rate, batch_size, duration, total if (total or duration) else 1000, pem, seed=seed,
        concurrency=concurrency, use_gzip=use_gzip, duplicate_fraction=duplicates, changed_id_fraction=changed_ids,
        save_private_key=Path(save_private_key) if save_private_key else None, echo=click.echo))


def _pairs(values: tuple[str, ...], hint: str, metavar: str) -> dict[str, str] | None:
    if not values:
        return None
    pairs = dict(v.split("=", 1) for v in values if "=" in v and v.split("=", 1)[0] and v.split("=", 1)[1])
    if len(pairs) != len(values):
        raise click.BadParameter(f"use {metavar}", param_hint=hint)
    return pairs


@emulate.command("dotdigital")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8767, show_default=True)
@click.option("--user", "users", multiple=True, metavar="USER=PASSWORD",
              help="Accepted API user (repeat; default: any non-empty user and password).")
@click.option("--region", type=click.Choice(["r1", "r2", "r3"]), default="r1", show_default=True,
              help="The account's region: other regions' API hosts answer 403.")
@click.option("--job-delay", type=float, default=1.0, show_default=True,
              help="Seconds before enrolments finish and campaign sends are sent.")
def emulate_dotdigital(host: str, port: int, users: tuple[str, ...], region: str, job_delay: float) -> None:
    """Dotdigital API emulator (contacts v3, lists, data fields, programs, campaigns, email, SMS, /_emulator/*)."""
    import asyncio

    from sgbridge.emulators.dotdigital import serve_dotdigital_emulator

    accepted = _pairs(users, "--user", "USER=PASSWORD")
    click.echo(f"Dotdigital emulator ({region}) on http://{host}:{port} "
               "(seed /_emulator/data-fields, /_emulator/lists; inspect /_emulator/contacts, /_emulator/requests)")
    asyncio.run(serve_dotdigital_emulator(host, port, accepted, region=region, job_delay_seconds=job_delay,
                                          log_level="warning"))


@emulate.command("twilio")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8768, show_default=True)
@click.option("--account", "accounts", multiple=True, metavar="SID=TOKEN",
              help="Account SID and auth token (repeat; default: one test account, printed at start).")
@click.option("--from", "numbers", multiple=True, metavar="+1555...",
              help="A phone number of the accounts that may be From (repeat; default +15005550006).")
@click.option("--status-delay", type=float, default=0.5, show_default=True,
              help="Seconds between two statuses of a message (queued, sending, sent, delivered).")
def emulate_twilio(host: str, port: int, accounts: tuple[str, ...], numbers: tuple[str, ...],
                   status_delay: float) -> None:
    """Twilio Messages API emulator (send, fetch, statuses, signed status callbacks, /_emulator/*)."""
    import asyncio

    from sgbridge.emulators.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_FROM, serve_twilio_emulator

    pairs = _pairs(accounts, "--account", "SID=TOKEN")
    shown = pairs or {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN}
    click.echo(f"Twilio emulator on http://{host}:{port} (accounts: {', '.join(shown)}; "
               f"From: {', '.join(numbers or (DEFAULT_FROM,))}; inspect /_emulator/messages, /_emulator/callbacks)")
    asyncio.run(serve_twilio_emulator(host, port, pairs, numbers=numbers or (DEFAULT_FROM,),
                                      status_delay_seconds=status_delay, log_level="warning"))
