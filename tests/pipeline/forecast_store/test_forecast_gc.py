"""``velocast store gc``: what a writer killed before its commit left is deleted, nothing readable is lost."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from fs_helpers import PROV, SMALL

from pipeline.forecast_store import ForecastStore, synthetic_forecast

# A real writer that is killed (SIGKILL, by itself) after its chunks are written and before its commit.
KILLED_WRITER = """
import os, signal, sys
from pipeline.forecast_store import ForecastStore, synthetic_forecast
from pipeline.forecast_store.store import ForecastStore as FS
FS._commit = lambda self, *a, **k: os.kill(os.getpid(), signal.SIGKILL)
ds = synthetic_forecast(sys.argv[2], members=5, leads=4, grid=(16, 9), levels=(500, 850))
ForecastStore.open(sys.argv[1]).append_cycle(ds, provenance=dict(source="s", config={}, checkpoint=None,
                                                                data_snapshot=None))
"""


def chunk_files(path: Path) -> int:
    return sum(1 for _ in (path / "chunks").iterdir())


def test_gc_deletes_a_killed_writers_chunks_and_keeps_every_cycle(tmp_path: Path) -> None:
    """A writer killed with SIGKILL before its commit leaves chunks no snapshot references; ``store gc`` keeps
    them within the grace period, deletes them after it, and every committed cycle reads back unchanged."""
    path = tmp_path / "f.icechunk"
    store = ForecastStore.create(path)
    store.append_cycle(synthetic_forecast("2020-01-01T00", **SMALL), provenance=PROV)
    before = store.dataset().load()
    committed = chunk_files(path)
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path), "2020-01-01T06"],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    orphans = chunk_files(path) - committed
    assert orphans > 0

    cli = [sys.executable, "-m", "pipeline", "store", "gc", str(path)]
    kept = subprocess.run(cli, capture_output=True, text=True, timeout=120)  # default grace: 1 day
    assert kept.returncode == 0, kept.stderr
    assert "deleted 0 chunks" in kept.stdout and chunk_files(path) == committed + orphans

    dry = subprocess.run([*cli, "--grace", "0", "--dry-run"], capture_output=True, text=True, timeout=120)
    assert f"would delete {orphans} chunks" in dry.stdout and chunk_files(path) == committed + orphans
    done = subprocess.run([*cli, "--grace", "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and f"deleted {orphans} chunks" in done.stdout, done.stdout + done.stderr
    assert chunk_files(path) == committed

    after = ForecastStore.open(path)
    assert [str(t)[:13] for t in after.init_times()] == ["2020-01-01T00"]
    xr_after = after.dataset().load()
    for name in before.data_vars:
        np.testing.assert_array_equal(xr_after[name].values, before[name].values)
    after.append_cycle(synthetic_forecast("2020-01-01T06", **SMALL), provenance=PROV)  # still writable
    assert len(after.init_times()) == 2


def test_gc_refuses_a_bad_age_in_one_line(small_store: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline", "store", "gc", str(small_store), "--grace", "soon"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "e.g. 12h or 7d" in done.stderr
