"""``sgbridge dead-letters …``: rejected deliveries, listed and replayed."""

from __future__ import annotations

import click
import orjson

from sgbridge.cli.common import config_option, open_journal


@click.group("dead-letters")
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
    from sgbridge.cli.output import print_records

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
