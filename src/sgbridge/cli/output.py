"""Tables for people: a table where the terminal is wide enough, one block per row where it is not.

Rich squeezes a table of eight columns into 80 by wrapping every cell into a tall, narrow strip
that nobody can read; below ``WIDE`` columns each row is printed as a short header line with its
key fields, and the long fields (reasons, errors) on indented lines of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

WIDE = 120  # terminal columns from which a row fits a table line


def print_records(columns: Sequence[str], rows: Sequence[Sequence[str]], long_columns: Sequence[str] = (),
                  console: Console | None = None) -> None:
    """``rows`` of ``columns``; ``long_columns`` (free text) go on lines of their own when narrow."""
    console = console or Console()
    if console.width >= WIDE:
        table = Table(*columns)
        for row in rows:
            table.add_row(*(Text(value) for value in row))  # text, not markup: an event named "[/]" is no tag
        console.print(table)
        return
    long = set(long_columns)
    for row in rows:
        fields = list(zip(columns, row, strict=True))
        head = "  ".join(f"{name} {value}" if i else f"#{value}" for i, (name, value) in enumerate(fields)
                         if name not in long)
        console.print(Text(head, style="bold"))
        for name, value in fields:
            if name in long:
                console.print(Text(f"    {name}: {value}"))
