"""The ``sgbridge`` command: serve, demo, emulate, dead-letters, status."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
import orjson

from sgbridge import __version__
from sgbridge.cli_common import ConfigProblem, config_option, open_journal
from sgbridge.cli_common import settings_from as _settings
from sgbridge.settings import ConfigError


@click.group()
@click.version_option(__version__, prog_name="sgbridge")
def main() -> None:
    """sgbridge: SendGrid ⇄ Segment, durable, deduplicated, fast."""


@main.command()
@config_option
@click.option("--host", default=None, help="Listen address (default from config: 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Listen port (default from config: 8080).")
@click.option("--role", "roles", multiple=True, metavar="ROLE[,ROLE]",
              help="Run only these roles in this process: ingest, deliver, warehouse, sync (repeat or comma-"
                   "separate). Without it, one process per configured role, supervised.")
@click.option("--runtime-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the roles' heartbeats and metrics files (default: a new temp folder).")
def serve(config: str | None, host: str | None, port: int | None, roles: tuple[str, ...],
          runtime_dir: str | None) -> None:
    """Run sgbridge: each role (ingest, deliver, warehouse) in a process of its own, supervised."""
    from pathlib import Path

    from sgbridge.journal import Journal, JournalUnavailable
    from sgbridge.roles import configured_roles, parse_roles

    settings = _settings(config)
    try:
        chosen = parse_roles(roles)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--role") from None
    label = ",".join(sorted(chosen)) if chosen else "supervisor"
    logging.basicConfig(level=settings.log_level.upper(),
                        format=f"%(asctime)s %(levelname)s [{label}] %(name)s %(message)s")
    # httpx logs every request's URL at INFO: one line per delivery, and the contacts export's
    # pre-signed download links, which grant access to the account's contacts until they expire.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not chosen:
        from sgbridge.roles.supervisor import Supervisor

        try:  # said here in one line, rather than by each role as it fails to start
            Journal(settings.database_url).close()
        except JournalUnavailable as exc:
            raise ConfigProblem(str(exc)) from None

        supervisor = Supervisor(settings, configured_roles(settings), config, host or settings.host,
                                port or settings.port, Path(runtime_dir) if runtime_dir else None)
        sys.exit(supervisor.run())
    if runtime_dir:
        import os

        os.environ.setdefault("SGBRIDGE_RUNTIME_DIR", runtime_dir)
    from sgbridge.roles.process import run_roles

    try:
        run_roles(settings, chosen, host or settings.host, port)
    except (ConfigError, JournalUnavailable) as exc:
        raise ConfigProblem(str(exc)) from None


@main.command()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: run until Ctrl-C).")
@click.option("--rate", type=float, default=500.0, show_default=True, help="Webhook events per second.")
@click.option("--batch-size", type=int, default=50, show_default=True, help="Events per webhook POST.")
@click.option("--database", type=click.Path(dir_okay=False), default=None, help="SQLite file (default: a temp dir).")
def demo(duration: float | None, rate: float, batch_size: int, database: str | None) -> None:
    """Run the bridge with the shipped emulators and realistic traffic; no accounts needed."""
    import asyncio
    from pathlib import Path

    from rich.console import Console

    from sgbridge.demo import run_demo

    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(run_demo(duration, rate, batch_size, Path(database) if database else None, Console()))
    except KeyboardInterrupt:
        click.echo("stopped")


@main.group()
def emulate() -> None:
    """Run a shipped emulator of an external API."""


@emulate.command("segment")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--write-key", "write_keys", multiple=True, help="Accepted write key (repeat; default: any).")
@click.option("--no-keep-messages", is_flag=True, help="Keep only ids and counters (for long benchmarks).")
def emulate_segment(host: str, port: int, write_keys: tuple[str, ...], no_keep_messages: bool) -> None:
    """Segment Tracking API emulator (auth, limits, messageId dedupe, faults, /_emulator/*)."""
    import asyncio

    from sgbridge.emulators.segment import serve_segment_emulator

    click.echo(f"Segment emulator on http://{host}:{port} (inspect /_emulator/stats, /_emulator/messages)")
    asyncio.run(serve_segment_emulator(host, port, write_keys or None, keep_messages=not no_keep_messages,
                                       log_level="warning"))


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


@main.group()
def actions() -> None:
    """Segment-compatible actions: list them, try one on an event."""


def _json_file(path: str, what: str) -> Any:
    try:
        with open(path, "rb") as handle:
            return orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise click.ClickException(f"{what} {path}: {exc}") from None


@actions.command("test")
@click.option("--destination", required=True, help="sendgrid, sendgrid-audiences or webhook (or Segment's slug).")
@click.option("--action", "action_key", required=True, help="The action's key, e.g. updateUserProfile.")
@click.option("--settings", "settings_file", type=click.Path(exists=True, dir_okay=False),
              help="JSON destination settings, e.g. {\"sendGridApiKey\": \"...\"}.")
@click.option("--mapping", "mapping_file", type=click.Path(exists=True, dir_okay=False),
              help="JSON field mappings as in Segment's UI; fields left out take the action's defaults.")
@click.option("--event", "event_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A Segment event (JSON object), or a JSON array of events to run as one batch.")
@click.option("--endpoint", default=None, help="API base URL, e.g. the emulator at http://127.0.0.1:8766.")
@click.option("--no-defaults", is_flag=True, help="Do not merge the action's default field mappings.")
def actions_test(destination: str, action_key: str, settings_file: str | None, mapping_file: str | None,
                 event_file: str, endpoint: str | None, no_defaults: bool) -> None:
    """Run one action on one event (or a batch) and print the requests and outcomes as JSON."""
    import asyncio

    from sgbridge.actions.runner import ConfigError as MappingConfigError
    from sgbridge.actions.testing import run_action_test

    settings = _json_file(settings_file, "settings") if settings_file else {}
    mapping = _json_file(mapping_file, "mapping") if mapping_file else {}
    event = _json_file(event_file, "event")
    if not isinstance(settings, dict) or not isinstance(mapping, dict) or not isinstance(event, dict | list):
        raise click.ClickException("settings and mapping must be JSON objects; the event an object or an array")
    try:
        report = asyncio.run(run_action_test(destination, action_key, settings, mapping, event,
                                             endpoint=endpoint, use_defaults=not no_defaults))
    except (MappingConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    if any(r["outcome"] != "delivered" for r in report["results"]):
        sys.exit(1)


@actions.command("reference")
def actions_reference() -> None:
    """Print the action reference (docs/actions-reference.md) as Markdown."""
    from sgbridge.actions.reference import render

    click.echo(render(), nl=False)


@actions.command("list")
def actions_list() -> None:
    """Every destination and action, with Segment's titles and default triggers."""
    from sgbridge.actions.catalog import catalog

    for spec in catalog().values():
        click.echo(f"{spec.key} ({spec.name})")
        for action in spec.actions.values():
            trigger = action.default_subscription or "-"
            origin = " [sgbridge]" if action.origin != "segment" else ""
            click.echo(f"  {action.key:<20} {action.title}{origin}   default trigger: {trigger}")


@main.group("dead-letters")
def dead_letters() -> None:
    """Events a destination rejected: list them, replay them."""


@dead_letters.command("list")
@config_option
@click.option("--destination", default=None)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dead_letters_list(config: str | None, destination: str | None, limit: int, as_json: bool) -> None:
    """List dead letters (rejected deliveries, emails held for review) with their reasons."""
    journal = open_journal(config)
    try:
        rows = journal.dead_letters(destination, limit)
    finally:
        journal.close()
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    if not rows:
        click.echo("no dead letters")
        return
    from sgbridge.cli_output import print_records

    print_records(("id", "destination", "status", "event", "event id", "attempts", "reason"),
                  [(str(r["id"]), r["destination"], r["status"], str(r["event"]), str(r["sg_event_id"]),
                    str(r["attempts"]), str(r["reason"])) for r in rows], long_columns=("event id", "reason"))


@dead_letters.command("replay")
@config_option
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@click.argument("ids", nargs=-1, type=int)
def dead_letters_replay(config: str | None, replay_all: bool, ids: tuple[int, ...]) -> None:
    """Queue dead letters for delivery again (a running `sgbridge serve` sends them)."""
    if not replay_all and not ids:
        raise click.UsageError("give dead-letter IDs or --all")
    journal = open_journal(config)
    try:
        count = journal.request_replay(None if replay_all else ids)
    finally:
        journal.close()
    click.echo(f"queued {count} dead letter(s) for replay")


@main.command()
@config_option
def status(config: str | None) -> None:
    """Show the log's size, each destination's cursor and outcome counts, as JSON."""
    journal = open_journal(config)
    try:
        click.echo(orjson.dumps(journal.stats(count_events=True), option=orjson.OPT_INDENT_2).decode())
    finally:
        journal.close()


@main.group()
def events() -> None:
    """Look up stored events."""


@events.command("show", context_settings={"ignore_unknown_options": True})
@config_option
@click.argument("ref")  # an id may start with "-": taken as the argument, not as an unknown option
def events_show(config: str | None, ref: str) -> None:
    """Follow one event (log seq, sg_event_id or Segment messageId): request, stored event, and per
    destination its outcome and attempts."""
    from sgbridge.inbound.segment import SEGMENT_SOURCES
    from sgbridge.journal.trace import find_seqs, trace

    settings = _settings(config)
    consumes = {"segment": lambda source: source not in SEGMENT_SOURCES}
    consumes.update({name: lambda source: source in SEGMENT_SOURCES for name in settings.actions})
    journal = open_journal(config)
    try:
        seqs = find_seqs(journal, ref, list(settings.sources))
        found = [t for t in (trace(journal, s, list(consumes), consumes) for s in seqs) if t is not None]
    finally:
        journal.close()
    if not found:
        raise click.ClickException(f"no stored event {ref!r} (it may be past retention)")
    for item in found:
        click.echo(orjson.dumps(item, option=orjson.OPT_INDENT_2).decode())


@main.command("config-reference")
def config_reference() -> None:
    """Print the configuration reference (docs/configuration.md) as Markdown."""
    from sgbridge.settings_doc import render

    click.echo(render(), nl=False)


def _register_sync_commands() -> None:
    from sgbridge.cli_sync import check, sync, sync_history

    for command in (sync, sync_history, check):
        main.add_command(command)


_register_sync_commands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
