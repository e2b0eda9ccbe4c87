"""The thread count: an explicit request wins, else the CPUs this process may use less the load on them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from models import threads


def test_explicit_requests_win_in_order(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv(threads.THREADS_ENV, "2")
    assert threads.choose_threads(5).threads == 5 and threads.choose_threads(5).source == "--threads"
    assert threads.choose_threads().threads == 2
    monkeypatch.delenv(threads.THREADS_ENV)
    assert threads.choose_threads().threads == 3 and threads.choose_threads().source == "$OMP_NUM_THREADS"
    monkeypatch.setenv(threads.THREADS_ENV, "lots")
    with pytest.raises(ValueError, match="whole number"):
        threads.choose_threads()


def test_auto_uses_the_affinity_mask_less_the_load(monkeypatch):
    """4 CPUs in the mask: load 0.2 → 4 threads, load 2.6 → 1, load 9 → 1 (never 0)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    for load, expected in ((0.2, 4), (2.6, 1), (9.0, 1), (1.4, 3)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        choice = threads.choose_threads()
        assert choice.threads == expected and choice.source == "auto"
        assert "CPUs available" in choice.describe()


def test_available_cpus_follows_the_affinity_mask():
    """A process pinned to one CPU (taskset) sees one CPU, whatever the machine has."""
    code = "from models.threads import available_cpus; print(available_cpus())"
    pinned = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    if pinned.returncode != 0:
        pytest.skip("taskset is not available here")
    assert pinned.stdout.strip() == "1"


def test_cli_threads_reach_torch():
    """`velocast --threads 1 …` sets torch's intra-op threads (here via the version-free `model` group)."""
    code = ("import torch, sys; from pipeline.cli import main\n"
            "try:\n    main(['--threads', '1', 'store', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('THREADS', torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert "THREADS 1" in done.stdout, done.stderr
