"""How many CPU threads torch should use: the CPUs this process may really run on, less those others keep busy.

On a shared 2-core machine, torch's default intra-op threads (one per core) ran 6–10× slower than one
thread whenever another process held a core: the threads wait at every kernel's barrier for the one that
is descheduled. So the default is chosen, not inherited:

``available`` = CPUs in the process's affinity mask (``os.sched_getaffinity``), capped by a cgroup CPU quota
(``/sys/fs/cgroup/cpu.max``, as containers and SLURM set it); ``busy`` = the 1-minute load average;
``threads = max(1, min(available, round(available − busy)))``. An explicit request wins: ``--threads N``
on the command line, else ``$VELOCAST_THREADS``, else ``$OMP_NUM_THREADS`` if the user set it.

:func:`apply_threads` exports the choice as ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` (read when torch is
first imported) and sets torch's count if torch is already loaded, so it works before or after the import.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

THREADS_ENV = "VELOCAST_THREADS"


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 (or v1) CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(count, quota) if quota else count)


def _cgroup_quota() -> int | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return max(1, math.ceil(int(text[0]) / int(text[1])))
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count and why: ``source`` is ``--threads``, ``$VELOCAST_THREADS``, ``$OMP_NUM_THREADS`` or
    ``auto`` (then ``available`` and ``busy`` say how it was found)."""

    threads: int
    source: str
    available: int
    busy: float

    def describe(self) -> str:
        if self.source == "auto":
            return (f"{self.threads} torch thread{'s' if self.threads > 1 else ''} ({self.available} CPUs available, "
                    f"load {self.busy:.1f}; --threads N to choose)")
        return f"{self.threads} torch thread{'s' if self.threads > 1 else ''} (from {self.source})"


def choose_threads(requested: int | None = None) -> ThreadChoice:
    """The thread count (see the module docstring for the order of precedence)."""
    available = available_cpus()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    for value, source in ((requested, "--threads"), (os.environ.get(THREADS_ENV), f"${THREADS_ENV}"),
                          (os.environ.get("OMP_NUM_THREADS"), "$OMP_NUM_THREADS")):
        if value not in (None, ""):
            try:
                count = int(value)  # type: ignore[arg-type]
            except ValueError:
                raise ValueError(f"{source} must be a whole number of threads, got {value!r}") from None
            if count < 1:
                raise ValueError(f"{source} must be at least 1, got {count}")
            return ThreadChoice(count, source, available, busy)
    return ThreadChoice(max(1, min(available, round(available - busy))), "auto", available, busy)


def apply_threads(requested: int | None = None) -> ThreadChoice:
    """Choose and apply the thread count for this process (and the processes it starts)."""
    choice = choose_threads(requested)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(choice.threads)
    os.environ[THREADS_ENV] = str(choice.threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(choice.threads)
    return choice


__all__ = ["THREADS_ENV", "ThreadChoice", "apply_threads", "available_cpus", "choose_threads"]
