"""``sgbridge demo``: the bridge with the shipped emulators and realistic traffic."""

from __future__ import annotations

import logging

import click


@click.command()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: run until Ctrl-C).")
@click.option("--rate", type=float, default=500.0, show_default=True, help="Webhook events per second.")
@click.option("--batch-size", type=int, default=50, show_default=True, help="Events per webhook POST.")
@click.option("--database", type=click.Path(dir_okay=False), default=None, help="SQLite file (default: a temp dir).")
def demo(duration: float | None, rate: float, batch_size: int, database: str | None) -> None:
    """Run the bridge with the shipped emulators and realistic traffic; no accounts needed."""
    import asyncio
    from pathlib import Path

    from rich.console import Console

    from sgbridge.demo import run_demo

    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(run_demo(duration, rate, batch_size, Path(database) if database else None, Console()))
    except KeyboardInterrupt:
        click.echo("stopped")
