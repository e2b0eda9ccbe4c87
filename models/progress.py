"""The progress bar of long loops: description, bar, n/N, optional extra fields, elapsed, remaining (on stderr)."""

from __future__ import annotations

import os
from typing import Any


def progress_bar(*, extra: str | None = None, console: Any = None, transient: bool = False,
                 disable: bool = False) -> Any:
    """A ``rich.progress.Progress``; ``extra`` is a column template such as ``"{task.fields[loss]}"``.

    The bar is off where its console is not a terminal (a log file, a pipe): rich draws nothing there while it
    runs and prints its last state at the end, a stray line before the command's own summary or error.
    ``VELOCAST_PROGRESS=1`` keeps it on anyway."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if extra:
        columns.append(TextColumn(extra))
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    console = console or Console(stderr=True)
    disable = disable or (not console.is_terminal and os.environ.get("VELOCAST_PROGRESS") != "1")
    return Progress(*columns, console=console, transient=transient, disable=disable)
