"""``sgbridge sync``, ``sgbridge sync-history`` and ``sgbridge check``: the object sync by hand."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
import orjson

from sgbridge.cli.common import config_option, open_journal, settings_from
from sgbridge.settings import SYNC_COLLECTIONS, Settings


def _sources(settings: Settings, source: str | None) -> list[str]:
    if source is not None:
        if source not in settings.sources:
            raise click.ClickException(f"unknown source {source!r}; configured: {', '.join(settings.sources)}")
        if settings.sources[source].api_key is None:
            raise click.ClickException(f"source {source!r} has no api_key (SENDGRID_API_KEY for the default "
                                       "source, sources.<name>.api_key otherwise)")
        return [source]
    names = [name for name, s in settings.sources.items() if s.api_key]
    if not names:
        raise click.ClickException("no source has a SendGrid API key: set SENDGRID_API_KEY (or sources.<name>."
                                   "api_key in the config file)")
    return names


class _Bars:
    """Rich progress bars, one per collection, fed by the sync's observer (from its thread)."""

    def __init__(self, collections: list[str]) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:<27}"), BarColumn(),
                                 TextColumn("{task.completed:>10,.0f} rows"), TextColumn("{task.fields[note]}"),
                                 TimeElapsedColumn())
        self.tasks = {name: self.progress.add_task(name, total=None, note="waiting") for name in collections}

    def __call__(self, result: Any) -> None:
        task = self.tasks.get(result.name)
        if task is None:
            return
        done = result.status not in ("running", "pending")
        note = result.status if done else (result.note or result.status)
        if result.error and done:
            note = f"{result.status}: {result.error[:80]}"
        total = result.rows if done else result.total
        self.progress.update(task, completed=result.rows, total=total, note=note)


@click.command()
@config_option
@click.argument("source", required=False)
@click.option("--collection", "-c", "collections", multiple=True, type=click.Choice(SYNC_COLLECTIONS),
              help="Sync only these (repeat); default: sync.collections.")
@click.option("--full-refresh", is_flag=True,
              help="Re-read the incremental suppression lists from the start (drops entries removed in SendGrid).")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON instead of progress bars.")
def sync(config: str | None, source: str | None, collections: tuple[str, ...], full_refresh: bool,
         as_json: bool) -> None:
    """Sync SendGrid objects (lists, segments, contacts, single sends, suppressions) to the warehouse now."""
    from sgbridge.sync.service import run_recorded

    settings = settings_from(config)
    if not settings.warehouse.enabled:
        raise click.ClickException("the warehouse is disabled (warehouse.enabled = false)")
    names = list(collections) or list(settings.sync.collections)
    journal = open_journal(config, settings)
    failed = False
    try:
        for name in _sources(settings, source):
            if as_json:
                report = run_recorded(settings, journal, name, collections=names, full_refresh=full_refresh)
            else:
                click.echo(f"syncing source {name} into dataset {settings.warehouse_dataset_for(name)}")
                bars = _Bars(names)
                with bars.progress:
                    report = run_recorded(settings, journal, name, collections=names, full_refresh=full_refresh,
                                          observer=bars)
            assert report is not None  # manual runs take no slot, so they always start
            failed = failed or report.status != "ok"
            if as_json:
                click.echo(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode())
            else:
                _print_report(report.as_json())
    finally:
        journal.close()
    if failed:
        sys.exit(1)


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("collection", "status", "rows", "seconds", "note")
    for c in report["collections"]:
        # Text, not markup: SendGrid's error messages may hold "[...]"
        table.add_row(c["collection"], c["status"], f"{c['rows']:,}", f"{c['seconds']:.1f}",
                      Text(c.get("error") or c.get("note") or ""))
    console = Console()
    console.print(table)
    line = f"run {report['status']}"
    if report.get("error"):
        line += f": {report['error']}"
    console.print(Text(line))


@click.command("sync-history")
@config_option
@click.argument("source", required=False)
@click.option("--limit", type=int, default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
def sync_history(config: str | None, source: str | None, limit: int, as_json: bool) -> None:
    """Past and running syncs: per collection its rows, status and errors; duration per run."""
    from sgbridge.journal.sync_runs import SyncRuns

    settings = settings_from(config)
    journal = open_journal(config, settings)
    try:
        runs = SyncRuns(journal, settings.sync.stale_after_seconds).history(source, limit)
    finally:
        journal.close()
    if as_json:
        for run in runs:
            click.echo(orjson.dumps(run.as_json()).decode())
        return
    if not runs:
        click.echo("no sync runs yet")
        return
    from sgbridge.cli.output import print_records

    table: list[tuple[str, ...]] = []
    for run in runs:
        duration = "-" if run.finished_at is None else f"{run.finished_at - run.started_at:.1f} s"
        rows = sum(int(c.get("rows", 0)) for c in run.collections)
        detail = ", ".join(f"{c['collection']} {c['status']}" + (f" ({c['error'][:60]})" if c.get("error") else "")
                           for c in run.collections if c.get("status") != "synced")
        table.append((str(run.id), run.source, run.trigger, time.strftime("%Y-%m-%d %H:%M:%S",
                      time.localtime(run.started_at)), duration, run.status, f"{rows:,}", detail or "all synced"))
    print_records(("run", "source", "trigger", "started", "duration", "status", "rows", "collections"), table,
                  long_columns=("collections",))


@click.command()
@config_option
@click.argument("source", required=False)
@click.option("--json", "as_json", is_flag=True)
def check(config: str | None, source: str | None, as_json: bool) -> None:
    """Ask SendGrid whether the API key is valid and which scopes the sync still needs."""
    from sgbridge.sync.check import check_source

    settings = settings_from(config)
    reports = [check_source(settings, name) for name in _sources(settings, source)]
    for report in reports:
        if as_json:
            click.echo(orjson.dumps(report.as_json()).decode())
        else:
            click.echo("\n".join(report.lines()))
    if not all(r.ok for r in reports):
        sys.exit(1)
