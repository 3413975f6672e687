"""What every ``sgbridge`` command shares: the --config option, settings, the journal."""

from __future__ import annotations

from typing import Any

import click

from sgbridge.settings import ConfigError, Settings, load_settings

config_option = click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                             help="TOML config file (or SGBRIDGE_CONFIG).")


class ConfigProblem(click.ClickException):
    """A configuration the command cannot run with: ``Error: <one line>`` on stderr and exit code 2,
    as click answers a usage error, and no traceback."""

    exit_code = 2


def settings_from(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None


def open_journal(config: str | None, settings: Settings | None = None) -> Any:
    """The journal of ``settings`` (already read), else of the config file and environment."""
    from sgbridge.journal import Journal, JournalUnavailable

    try:
        return Journal((settings or settings_from(config)).database_url)
    except JournalUnavailable as exc:
        raise ConfigProblem(str(exc)) from None
