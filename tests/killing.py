"""Real ``kill -9`` of a real ``velocast`` process, at a chosen moment.

:func:`run_killed_at` runs the CLI in a child process whose named function SIGKILLs the process on its
``nth`` call (before or after doing its work): a deterministic kill at the worst moment, e.g. with the output
complete in its temporary and not yet renamed. :func:`run_killed_when` starts the CLI and SIGKILLs it as
soon as a glob matches (e.g. the first chunk of a temporary store), a kill in the middle of a write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

KILL_AT = r"""
import importlib, os, signal, sys
point, when, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
module_name, _, attr = point.partition(":")
owner = importlib.import_module(module_name)
for part in attr.split(".")[:-1]:
    owner = getattr(owner, part)
name = attr.split(".")[-1]
original = getattr(owner, name)
calls = [0]
def kill_point(*args, **kwargs):
    calls[0] += 1
    if calls[0] == nth and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = original(*args, **kwargs)
    if calls[0] == nth and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result
setattr(owner, name, kill_point)
from pipeline.cli import main
main(sys.argv[4:])
"""


def velocast(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``velocast ARGS`` in a child process."""
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def run_killed_at(point: str, args: Sequence[str], *, when: str = "before", nth: int = 1,
                  timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``velocast ARGS``, SIGKILLed at the ``nth`` call of ``point`` (``module:attr`` or ``module:Class.attr``)."""
    done = subprocess.run([sys.executable, "-c", KILL_AT, point, when, str(nth), *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == -signal.SIGKILL, f"not killed at {point} (exit {done.returncode}): {done.stderr[-2000:]}"
    return done


def run_killed_when(folder: Path, pattern: str, args: Sequence[str], *, timeout: float = 300) -> bool:
    """``velocast ARGS``, SIGKILLed as soon as ``folder.glob(pattern)`` matches; False if it ended first."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if next(folder.glob(pattern), None) is not None:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        return proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()


def leftovers(folder: Path) -> list[str]:
    """Hidden temporaries (``.NAME.tmp-…``) anywhere below ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.tmp-*"))
