"""``sgbridge status`` and ``sgbridge events show``: the journal, and one event's path through it."""

from __future__ import annotations

import click
import orjson

from sgbridge.cli.common import config_option, open_journal
from sgbridge.cli.common import settings_from as _settings


@click.command()
@config_option
def status(config: str | None) -> None:
    """Show the log's size, each destination's cursor and outcome counts, as JSON."""
    journal = open_journal(config)
    try:
        click.echo(orjson.dumps(journal.stats(count_events=True), option=orjson.OPT_INDENT_2).decode())
    finally:
        journal.close()


@click.group()
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
    if settings.workflows_wanted():
        consumes["workflows"] = lambda source: True  # the workflows' intake reads every event
    journal = open_journal(config)
    try:
        seqs = find_seqs(journal, ref, list(settings.sources))
        workflows = [w.name for w in settings.workflows]
        found = [t for t in (trace(journal, s, list(consumes), consumes, workflows) for s in seqs) if t is not None]
    finally:
        journal.close()
    if not found:
        raise click.ClickException(f"no stored event {ref!r} (it may be past retention)")
    for item in found:
        click.echo(orjson.dumps(item, option=orjson.OPT_INDENT_2).decode())
