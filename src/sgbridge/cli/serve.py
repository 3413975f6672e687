"""``sgbridge serve``: the supervised roles, or some roles in this process."""

from __future__ import annotations

import sys

import click

from sgbridge.cli.common import ConfigProblem, config_option
from sgbridge.cli.common import settings_from as _settings
from sgbridge.settings import ConfigError


@click.command()
@config_option
@click.option("--host", default=None, help="Listen address (default from config: 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Listen port (default from config: 8080).")
@click.option("--role", "roles", multiple=True, metavar="ROLE[,ROLE]",
              help="Run only these roles in this process: ingest, deliver, warehouse, sync, workflows, web (repeat or "
                   "comma-separate; web serves the console on --port, default console.port). Without it, one "
                   "process per configured role, supervised.")
@click.option("--runtime-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the roles' heartbeats and metrics files (default: a new temp folder).")
def serve(config: str | None, host: str | None, port: int | None, roles: tuple[str, ...],
          runtime_dir: str | None) -> None:
    """Run sgbridge: each role (ingest, deliver, warehouse, workflows, web) in a process of its own, supervised."""
    from pathlib import Path

    from sgbridge.journal import Journal, JournalUnavailable
    from sgbridge.roles import configured_roles, parse_roles

    settings = _settings(config)
    try:
        chosen = parse_roles(roles)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--role") from None
    label = ",".join(sorted(chosen)) if chosen else "supervisor"
    from sgbridge.logs import configure

    configure(settings.log_level, settings.log_format, label)
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
