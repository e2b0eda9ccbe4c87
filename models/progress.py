"""The progress bar of long loops: description, bar, n/N, optional extra fields, elapsed, remaining (on stderr)."""

from __future__ import annotations

from typing import Any


def progress_bar(*, extra: str | None = None, console: Any = None, transient: bool = False,
                 disable: bool = False) -> Any:
    """A ``rich.progress.Progress``; ``extra`` is a column template such as ``"{task.fields[loss]}"``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if extra:
        columns.append(TextColumn(extra))
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=console or Console(stderr=True), transient=transient, disable=disable)
