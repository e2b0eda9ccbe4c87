"""One progress display for a whole run: the stage list, the current stage's own bar and ETA, the elapsed time.

:class:`RunDisplay` is opened by ``velocast run`` before anything slow (a Prefect server may take a minute
to start), so the stage list shows at once. Runners tell it where they are with :func:`stage_started` and
:func:`stage_finished` (no-ops when no display is open); every progress bar a stage opens
(:func:`models.progress.progress_bar`) is drawn inside it, under the stage list. Where stderr is not a
terminal (a log, CI) nothing is drawn; the runners' log lines name each stage instead.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Self

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from pipeline.runs.spec import RunSpec, Stage

log = logging.getLogger(__name__)

_active: RunDisplay | None = None
_lock = threading.Lock()


@dataclass
class _StageRow:
    name: str
    description: str
    state: str = "pending"  # pending | running | done | cached | failed
    started: float | None = None
    seconds: float | None = None


class _FieldsColumn(ProgressColumn):
    """A loop's extra fields (e.g. ``loss 0.123``), whatever they are called."""

    def render(self, task: Task) -> Text:
        return Text(" ".join(str(v) for v in task.fields.values() if v not in ("", None)), style="cyan")


_ICONS = {"pending": ("·", "dim"), "running": ("▶", "bold yellow"), "done": ("✓", "green"),
          "cached": ("✓", "dim green"), "failed": ("✗", "bold red")}


class RunDisplay:
    """The live stage list of one run of ``spec`` on stderr (see the module doc); a context manager."""

    def __init__(self, spec: RunSpec, *, console: Console | None = None, enabled: bool = True) -> None:
        from pipeline.console import err_console

        self.console = console or err_console
        self.title = f"velocast run {spec.domain}"
        self.rows = [_StageRow(stage.name, stage.description) for stage in spec.stages]
        self.note = ""
        self.enabled = enabled and self.console.is_terminal
        self.progress = Progress(TextColumn("  [bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 _FieldsColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=self.console)
        self._spinner = Spinner("dots")
        self._start = time.monotonic()
        self._stack = ExitStack()

    # -- what runners call (through the module functions) ---------------------------------------------------
    def started(self, name: str) -> None:
        row = self._row(name)
        if row is not None:
            row.state, row.started = "running", time.monotonic()
        self.note = ""

    def finished(self, name: str, *, cached: bool, seconds: float) -> None:
        row = self._row(name)
        if row is not None:
            row.state = "cached" if cached else "done"
            row.seconds = None if cached else seconds

    def set_note(self, text: str) -> None:
        """A line under the title (e.g. ``starting a Prefect server``) until the next stage starts."""
        self.note = text

    # -- rendering ----------------------------------------------------------------------------------------
    def _row(self, name: str) -> _StageRow | None:
        return next((row for row in self.rows if row.name == name), None)

    def __rich__(self) -> RenderableType:
        now = time.monotonic()
        done = sum(row.state in ("done", "cached") for row in self.rows)
        header = Text.assemble((self.title, "bold"), f"  ·  {done}/{len(self.rows)} stages  ·  ",
                               clock(now - self._start))
        table = Table.grid(padding=(0, 1))
        for column in ("icon", "stage", "time", "description"):
            table.add_column(column, justify="right" if column == "time" else "left",
                             no_wrap=column != "description", overflow="ellipsis")
        for row in self.rows:
            icon, style = _ICONS[row.state]
            if row.state == "running" and row.started is not None:
                when = clock(now - row.started)
            elif row.state == "cached":
                when = "cached"
            elif row.seconds is not None:
                when = clock(row.seconds)
            else:
                when = ""
            table.add_row(Text(icon, style=style), Text(row.name, style="bold" if row.state == "running" else ""),
                          when, Text(row.description, style="dim"))
        parts: list[RenderableType] = [header, table]
        if self.note:
            self._spinner.update(text=Text(self.note, style="dim"))
            parts.append(self._spinner)
        if self.progress.tasks:
            parts.append(self.progress.get_renderable())
        return Group(*parts)

    # -- lifetime -----------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        global _active
        from models.progress import shared_progress

        with _lock:
            _active = self
        if self.enabled:
            self._stack.enter_context(shared_progress(self.progress))
            self._stack.enter_context(Live(self, console=self.console, refresh_per_second=4, transient=False,
                                           redirect_stdout=True, redirect_stderr=True))
        return self

    def __exit__(self, *exc: object) -> None:
        global _active
        with _lock:
            _active = None
        running = [row for row in self.rows if row.state == "running"]
        for row in running:  # the run stopped inside this stage
            row.state = "failed"
            row.seconds = time.monotonic() - (row.started or self._start)
        self.note = ""
        self._stack.close()


def clock(seconds: float) -> str:
    """``12.3 s`` under a minute, ``m:ss`` from a minute on, ``h:mm:ss`` from an hour on."""
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def stage_started(number: int, total: int, stage: Stage) -> None:
    """Log ``[n/N] stage: description`` and tell the open display (if any) that ``stage`` is running."""
    log.info("[%d/%d] %s: %s", number, total, stage.name, stage.description)
    display = _active
    if display is not None:
        display.started(stage.name)


def stage_finished(number: int, total: int, name: str, *, cached: bool, seconds: float) -> None:
    """Log how stage ``name`` ended and tell the open display (if any); ``cached``: reused."""
    log.info("[%d/%d] %s %s", number, total, name, "reused (cached)" if cached else f"done in {clock(seconds)}")
    display = _active
    if display is not None:
        display.finished(name, cached=cached, seconds=seconds)


def note(text: str) -> None:
    """Show ``text`` under the open display's title (if any) until the next stage starts."""
    display = _active
    if display is not None:
        display.set_note(text)
