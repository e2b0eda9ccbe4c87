"""Shared rich consoles and the progress bar used for long loops."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


def make_progress(*, transient: bool = False, enabled: bool = True) -> Progress:
    """A rich progress bar on stderr (description, bar, n/N, elapsed, remaining); ``enabled=False`` hides it."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
        disable=not enabled,
    )


def track(iterable: Iterable[T], *, total: int | None = None, description: str = "working") -> Iterator[T]:
    """Iterate with a progress bar on stderr."""
    with make_progress() as progress:
        task = progress.add_task(description, total=total if total is not None else _len_or_none(iterable))
        for item in iterable:
            yield item
            progress.advance(task)


def _len_or_none(iterable: Iterable[object]) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None
