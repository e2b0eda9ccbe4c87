"""The progress bar of long loops: description, bar, n/N, optional extra fields, elapsed, remaining (on stderr).

A job that shows one display for all its work (``velocast run``'s stage list) installs its own
``rich.progress.Progress`` with :func:`shared_progress`; while it is installed every :func:`progress_bar`
adds its tasks to that display (and removes them when it stops) instead of starting a second live display.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any, Self

_shared_lock = threading.Lock()
_shared: Any = None  # the job's rich Progress, while a job display is showing


@contextlib.contextmanager
def shared_progress(progress: Any) -> Iterator[Any]:
    """Inside the block, every :func:`progress_bar` draws its tasks into ``progress`` (a rich ``Progress``
    that the caller renders, e.g. inside its own ``Live``). One per process; the block is not re-entrant."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            raise RuntimeError("a shared progress display is already installed")
        _shared = progress
    try:
        yield progress
    finally:
        with _shared_lock:
            _shared = None


class SharedBar:
    """A loop's bar drawn inside the job's display: the ``Progress`` calls a loop makes (``add_task``,
    ``update``, ``advance``, ``start``/``stop``, ``with``), with its tasks removed when it stops."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._tasks: list[Any] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Nothing to start: the job's display is already live."""

    def stop(self) -> None:
        for task in self._tasks:
            with contextlib.suppress(KeyError):
                self._progress.remove_task(task)
        self._tasks.clear()

    def add_task(self, description: str, **kwargs: Any) -> Any:
        task = self._progress.add_task(description, **kwargs)
        self._tasks.append(task)
        return task

    def __getattr__(self, name: str) -> Any:  # update, advance, reset, tasks …
        return getattr(self._progress, name)


def progress_bar(*, extra: str | None = None, console: Any = None, transient: bool = False,
                 disable: bool = False) -> Any:
    """A ``rich.progress.Progress``; ``extra`` is a column template such as ``"{task.fields[loss]}"``.

    The bar is off where its console is not a terminal (a log file, a pipe): rich draws nothing there while it
    runs and prints its last state at the end, a stray line before the command's own summary or error.
    ``VELOCAST_PROGRESS=1`` keeps it on anyway. Inside :func:`shared_progress` the bar is a
    :class:`SharedBar` of the job's display (its extra fields are shown by that display)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    shared = _shared
    if shared is not None and not disable:
        return SharedBar(shared)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if extra:
        columns.append(TextColumn(extra))
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    console = console or Console(stderr=True)
    disable = disable or (not console.is_terminal and os.environ.get("VELOCAST_PROGRESS") != "1")
    return Progress(*columns, console=console, transient=transient, disable=disable)
