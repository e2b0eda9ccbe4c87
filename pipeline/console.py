"""Shared rich consoles and the progress bar used for long loops."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from models.progress import progress_bar

console = Console()
err_console = Console(stderr=True)


def make_progress(*, transient: bool = False, enabled: bool = True) -> Progress:
    """A rich progress bar on stderr (description, bar, n/N, elapsed, remaining); ``enabled=False`` hides it."""
    return progress_bar(console=err_console, transient=transient, disable=not enabled)


def format_value(value: Any) -> str:
    """A table cell: 4 significant digits for numbers, – for nothing."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}"


def rows_table(rows: Sequence[Mapping[str, Any]], *, title: str) -> Table:
    """A rich table of ``rows`` (dicts with the same keys; the first column left-aligned, numbers right)."""
    table = Table(title=title)
    columns = list(rows[0]) if rows else []
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(format_value(row.get(c)) for c in columns))
    return table
