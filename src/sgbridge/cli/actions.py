"""``sgbridge actions …``: the action catalog, and Segment's "Test mapping" on the command line."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson


@click.group()
def actions() -> None:
    """Segment-compatible actions: list them, try one on an event."""


def _json_file(path: str, what: str) -> Any:
    try:
        with open(path, "rb") as handle:
            return orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise click.ClickException(f"{what} {path}: {exc}") from None


@actions.command("test")
@click.option("--destination", required=True, help="sendgrid, sendgrid-audiences, webhook, dotdigital, "
              "dotdigital-audiences or twilio (or Segment's slug).")
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
