"""``sgbridge config-reference``: the configuration reference, rendered from the settings."""

from __future__ import annotations

import click


@click.command("config-reference")
def config_reference() -> None:
    """Print the configuration reference (docs/configuration.md) as Markdown."""
    from sgbridge.settings_doc import render

    click.echo(render(), nl=False)
