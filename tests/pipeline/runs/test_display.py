"""The run's one progress display: the stage list with each stage's state and time, every loop's bar drawn
inside it (not as a second live display), a failed stage marked, and `velocast run` showing it at once in a
terminal and ending with the summary."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from models.progress import SharedBar, progress_bar
from pipeline.console import print_table, rows_table
from pipeline.runs import display as run_display
from pipeline.runs.display import RunDisplay, clock
from pipeline.toy.run import RUN as TOY_RUN


def _terminal() -> Console:
    return Console(force_terminal=True, width=120, record=True, color_system=None)


def _text(display: RunDisplay, console: Console) -> str:
    with console.capture() as capture:
        console.print(display)
    return capture.get()


def test_the_stage_list_shows_each_stage_state_and_time() -> None:
    console = _terminal()
    with RunDisplay(TOY_RUN, console=console) as display:
        run_display.stage_started(1, 3, TOY_RUN.stages[0])
        first = _text(display, console)
        run_display.stage_finished(1, 3, "train", cached=False, seconds=75.0)
        run_display.stage_finished(2, 3, "sample", cached=True, seconds=0.0)
        run_display.stage_started(3, 3, TOY_RUN.stages[2])
        later = _text(display, console)
    assert "velocast run toy" in first and "0/3 stages" in first
    assert "▶ train" in first and "· sample" in first and "· evaluate" in first
    assert "✓ train" in later and "1:15" in later and "cached" in later and "▶ evaluate" in later
    assert "2/3 stages" in later


def test_a_loops_bar_is_drawn_inside_the_display_and_removed_when_it_stops() -> None:
    console = _terminal()
    with RunDisplay(TOY_RUN, console=console) as display:
        run_display.stage_started(1, 3, TOY_RUN.stages[0])
        bar = progress_bar(extra="{task.fields[loss]}")
        assert isinstance(bar, SharedBar)
        with bar:
            task = bar.add_task("train", total=200, loss="")
            bar.update(task, completed=50, loss="loss 0.1234")
            during = _text(display, console)
        after = _text(display, console)
    assert "50/200" in during and "loss 0.1234" in during and "eta" in during
    assert "50/200" not in after
    assert isinstance(progress_bar(), Progress)  # outside a display: a bar of its own


def test_a_stage_that_raises_is_marked_failed() -> None:
    console = _terminal()
    display = RunDisplay(TOY_RUN, console=console)
    try:
        with display:
            run_display.stage_started(1, 3, TOY_RUN.stages[0])
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert "✗ train" in _text(display, console)
    assert run_display._active is None


def test_times_read_as_seconds_then_minutes_then_hours() -> None:
    assert [clock(s) for s in (2.24, 59.9, 75, 3725)] == ["2.2 s", "59.9 s", "1:15", "1:02:05"]


def test_a_table_is_never_cut_to_eighty_columns_in_a_log() -> None:
    rows = [{"system": "deterministic_noise", **{f"channel {i} {h}h": 1.2345 for i in range(3) for h in (6, 24)}}]
    log = Console(file=open(os.devnull, "w"), force_terminal=False, record=True, width=80)  # noqa: SIM115
    print_table(rows_table(rows, title="wide"), target=log)
    text = log.export_text()
    assert "deterministic_noise" in text and "…" not in text and max(map(len, text.splitlines())) > 80


def test_run_in_a_terminal_shows_the_stages_at_once_and_ends_with_the_summary(tmp_path: Path) -> None:
    """`velocast run toy --quick --runner local` in a pseudo-terminal: the stage list is on screen within
    seconds of starting (before any stage finishes), and the summary (times, outputs, next commands) follows."""
    command = [sys.executable, "-m", "pipeline", "--threads", "1", "run", "toy", "--quick", "--runner", "local",
               "--set", "train.steps=300", "--out", str(tmp_path / "toy")]
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm"}
    start = time.monotonic()
    proc = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    output, first_shown = b"", None
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 120)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if first_shown is None and b"velocast run toy" in output:
                first_shown = time.monotonic() - start, output.count(b"done in")
    finally:
        proc.wait(timeout=120)
        os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))
    assert proc.returncode == 0, text[-3000:]
    assert first_shown is not None, text[-3000:]
    seconds, finished_before = first_shown
    assert finished_before == 0 and seconds < 15, (seconds, text[:2000])
    for needle in ("✓ train", "in all (local runner)", "outputs in", "next:", "velocast sample toy"):
        assert needle in text, text[-3000:]
