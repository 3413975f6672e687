"""``sgbridge workflows …``: the configured workflows, their runs, and a dry run on a simulated clock."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click
import orjson

from sgbridge.cli.common import ConfigProblem, config_option, open_journal, settings_from


@click.group("workflows")
def workflows() -> None:
    """Durable workflows: list them, their runs, cancel a run, test one on a file of events."""


@workflows.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def workflows_list(config: str | None, as_json: bool) -> None:
    """The configured workflows (checked), with their runs by state."""
    settings = settings_from(config)
    compiled = settings.compiled_workflows()
    from sgbridge.journal.workflow_runs import WorkflowRuns

    journal = open_journal(config, settings)
    try:
        counts = WorkflowRuns(journal).counts()
    finally:
        journal.close()
    rows = [{"name": name, "enabled": w.enabled, "trigger": w.trigger.text, "steps": len(w.steps),
             "exit_on": [s.text for s in w.exit_on], "runs": counts.get(name, {})} for name, w in compiled.items()]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    if not rows:
        click.echo("no workflows configured ([[workflows]] in the config: docs/workflows.md)")
        return
    from sgbridge.cli.output import print_records

    print_records(("name", "enabled", "trigger", "steps", "runs"),
                  [(r["name"], "yes" if r["enabled"] else "no", r["trigger"], str(r["steps"]),
                    ", ".join(f"{k} {v}" for k, v in sorted(r["runs"].items())) or "none") for r in rows],
                  long_columns=("trigger",))


@workflows.command("runs")
@config_option
@click.option("--workflow", default=None, help="Only this workflow's runs.")
@click.option("--state", default=None, help="ready, waiting, running, completed, exited, failed, cancelled, late.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def workflows_runs(config: str | None, workflow: str | None, state: str | None, limit: int, as_json: bool) -> None:
    """The latest runs, newest first."""
    from sgbridge.journal.workflow_runs import WorkflowRuns

    journal = open_journal(config)
    try:
        rows = WorkflowRuns(journal).list_runs(workflow, state, limit)
    finally:
        journal.close()
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row.as_json()).decode())
        return
    if not rows:
        click.echo("no runs")
        return
    from sgbridge.cli.output import print_records
    from sgbridge.workflows.simulate import iso

    print_records(("run", "workflow", "key", "state", "at", "next", "detail"),
                  [(str(r.id), r.workflow, r.run_key, r.state, r.position,
                    iso(r.due_at) if r.due_at is not None and r.state != "running" else "",
                    r.detail or "") for r in rows], long_columns=("key", "detail"))


@workflows.command("show")
@config_option
@click.argument("run", type=int)
def workflows_show(config: str | None, run: int) -> None:
    """One run, its context and the steps it took, as JSON."""
    from sgbridge.journal.workflow_runs import WorkflowRuns

    journal = open_journal(config)
    try:
        runs = WorkflowRuns(journal)
        found = runs.get(run)
        if found is None:
            raise click.ClickException(f"no run {run}")
        shown = {**found.as_json(), "context": found.context, "steps": runs.steps(run)}
    finally:
        journal.close()
    click.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())


@workflows.command("cancel")
@config_option
@click.argument("run", type=int)
def workflows_cancel(config: str | None, run: int) -> None:
    """Cancel an active run: it takes no further step."""
    from sgbridge.journal.workflow_runs import WorkflowRuns

    journal = open_journal(config)
    try:
        cancelled = WorkflowRuns(journal).cancel(run, time.time())
    finally:
        journal.close()
    if not cancelled:
        raise click.ClickException(f"run {run} is not active (or does not exist): nothing to cancel")
    click.echo(f"run {run} cancelled")


@workflows.command("test")
@config_option
@click.option("--workflow", default=None, help="Only this workflow (default: all configured).")
@click.option("--events", "events_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A JSON array of events, or one per line: Segment calls and SendGrid webhook events.")
@click.option("--endpoint", default=None, help="Send the action steps to this API base URL (an emulator); "
              "without it nothing is sent.")
def workflows_test(config: str | None, workflow: str | None, events_file: str, endpoint: str | None) -> None:
    """Replay a file of events on a simulated clock; print each run, its steps and actions, as JSON."""
    settings = settings_from(config)
    from sgbridge.workflows.simulate import read_events, simulate

    try:
        events = read_events(Path(events_file))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ConfigProblem(f"{events_file}: {exc}") from None
    try:
        report = asyncio.run(simulate(settings, events, workflow, endpoint))
    except ValueError as exc:
        raise ConfigProblem(str(exc)) from None
    click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
