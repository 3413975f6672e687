"""The ``sgbridge`` command: serve, demo, emulate, dead-letters, status."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
import orjson

from sgbridge import __version__
from sgbridge.settings import ConfigError, Settings, load_settings


def _settings(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


config_option = click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                             help="TOML config file (or SGBRIDGE_CONFIG).")


@click.group()
@click.version_option(__version__, prog_name="sgbridge")
def main() -> None:
    """sgbridge: SendGrid ⇄ Segment, durable, deduplicated, fast."""


@main.command()
@config_option
@click.option("--host", default=None, help="Listen address (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (default from config: 8080).")
def serve(config: str | None, host: str | None, port: int | None) -> None:
    """Run ingestion and delivery in one process."""
    import uvicorn

    from sgbridge.app import build_app

    settings = _settings(config)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        app = build_app(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    uvicorn.run(app, host=host or settings.host, port=port or settings.port, log_level=settings.log_level,
                access_log=False)


@main.group("dead-letters")
def dead_letters() -> None:
    """Events a destination rejected: list them, replay them."""


def _journal(config: str | None) -> Any:
    from sgbridge.journal import Journal

    return Journal(_settings(config).database_url)


@dead_letters.command("list")
@config_option
@click.option("--destination", default=None)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dead_letters_list(config: str | None, destination: str | None, limit: int, as_json: bool) -> None:
    """List dead letters (rejected deliveries) with their reasons."""
    journal = _journal(config)
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
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "destination", "event", "sg_event_id", "attempts", "reason")
    for r in rows:
        table.add_row(str(r["id"]), r["destination"], str(r["event"]), str(r["sg_event_id"]),
                      str(r["attempts"]), r["reason"])
    Console().print(table)


@dead_letters.command("replay")
@config_option
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@click.argument("ids", nargs=-1, type=int)
def dead_letters_replay(config: str | None, replay_all: bool, ids: tuple[int, ...]) -> None:
    """Queue dead letters for delivery again (a running `sgbridge serve` sends them)."""
    if not replay_all and not ids:
        raise click.UsageError("give dead-letter IDs or --all")
    journal = _journal(config)
    try:
        count = journal.request_replay(None if replay_all else ids)
    finally:
        journal.close()
    click.echo(f"queued {count} dead letter(s) for replay")


@main.command()
@config_option
def status(config: str | None) -> None:
    """Show the log's size, each destination's cursor and outcome counts, as JSON."""
    journal = _journal(config)
    try:
        click.echo(orjson.dumps(journal.stats(), option=orjson.OPT_INDENT_2).decode())
    finally:
        journal.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
