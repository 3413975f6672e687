"""``sgbridge audiences …``: reconcile a SendGrid list with the audience membership sgbridge recorded."""

from __future__ import annotations

import asyncio

import click
import httpx
import orjson

from sgbridge.cli.common import ConfigProblem, config_option, open_journal, settings_from


@click.group("audiences")
def audiences() -> None:
    """Audience lists: reconcile one now, show the reconciles' history."""


@audiences.command("reconcile")
@config_option
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Report the drift; change nothing in SendGrid.")
def audiences_reconcile(config: str | None, name: str, dry_run: bool) -> None:
    """Run the [[audience_reconcile]] NAME now and print its report as JSON (exit 1 if it failed)."""
    from sgbridge.workflows.reconcile import Reconciler

    settings = settings_from(config)
    names = [r.name for r in settings.audience_reconcile]
    if name not in names:
        raise ConfigProblem(f"no [[audience_reconcile]] named {name!r} (configured: {', '.join(names) or 'none'})")
    journal = open_journal(config, settings)

    async def go() -> dict[str, object] | None:
        async with httpx.AsyncClient(timeout=60.0) as client:
            return await Reconciler(settings, journal, client).run(name, dry_run=dry_run)

    try:
        report = asyncio.run(go())
    finally:
        journal.close()
    assert report is not None  # a run asked for by hand takes no schedule slot
    click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    if "error" in report:
        raise SystemExit(1)


@audiences.command("history")
@config_option
@click.option("--name", default=None, help="Only this reconcile's runs.")
@click.option("--limit", type=int, default=20, show_default=True)
def audiences_history(config: str | None, name: str | None, limit: int) -> None:
    """The latest reconcile runs, newest first, one JSON object per line."""
    from sgbridge.journal.sync_runs import SyncRuns
    from sgbridge.workflows.reconcile import SOURCE_PREFIX

    settings = settings_from(config)
    journal = open_journal(config, settings)
    try:
        runs = SyncRuns(journal, settings.sync.stale_after_seconds)
        found = runs.history(f"{SOURCE_PREFIX}{name}", limit) if name else runs.history(None, limit, SOURCE_PREFIX)
    finally:
        journal.close()
    for run in found:
        click.echo(orjson.dumps(run.as_json()).decode())
