"""Shared rich consoles and the progress bar used for long loops."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from models.progress import progress_bar

# soft_wrap: a line is never broken at the console's width (80 columns where the output is not a terminal),
# so paths and summaries stay whole in logs and pipes.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


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


def shown_path(path: str | Path) -> str:
    """``path`` relative to the working directory where it lies below it (shorter, copy-pasteable), else as is."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def print_table(table: Table, *, target: Console | None = None) -> None:
    """Print ``table`` at the terminal's width (cells fold rather than end in "…"), or at its natural width
    where the output is not a terminal (a log or a pipe has no width to fit, and rich would assume 80)."""
    from rich.measure import Measurement

    target = target or console
    for column in table.columns:
        column.overflow = "fold"
    if target.is_terminal:
        target.print(table)
    else:
        natural = Measurement.get(target, target.options.update(width=10_000), table).maximum
        saved = target._width  # rich caps print(width=) at the console's width, so widen the console itself
        target.width = max(natural, 20)
        try:
            target.print(table)
        finally:
            target._width = saved


@contextlib.contextmanager
def native_output_silenced() -> Iterator[None]:
    """Silence what C libraries print on the process's own stdout and stderr inside the block (mdtraj's DCD
    plugin announces every file it opens; xdrfile prints "Undocumented error" before Python sees the error),
    so a user sees velocast's one line. Only for short library calls: velocast's own output in the block is
    silenced too."""
    import ctypes

    sys.stdout.flush()
    sys.stderr.flush()
    libc = ctypes.CDLL(None)
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        libc.fflush(None)  # what C buffered goes to /dev/null, not to the restored streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)
