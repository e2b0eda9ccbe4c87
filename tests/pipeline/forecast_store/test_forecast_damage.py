"""Damaged and impossible stores are one line and exit 2, never a traceback or a Rust panic: a regular file
given as a store, deleted branch references, truncated snapshot, manifest and chunk files, a read-only
place to create one; and a cycle committed but never tagged (a kill between the two) is tagged by a rerun."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fs_helpers import PROV, SMALL


def _truncate_all(folder: Path) -> None:
    for path in folder.iterdir():
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def _damaged(small_store: Path, tmp_path: Path, kind: str) -> Path:
    if kind == "regular file":
        path = tmp_path / "file.icechunk"
        path.write_text("not a store")
        return path
    path = tmp_path / f"{kind.replace(' ', '_')}.icechunk"
    shutil.copytree(small_store, path)
    if kind == "deleted refs":
        shutil.rmtree(path / "refs")
    elif kind == "deleted branch":
        shutil.rmtree(path / "refs" / "branch.main")
    else:
        _truncate_all(path / kind.split()[-1])
    return path


@pytest.mark.parametrize("kind, needle", [
    ("regular file", "is a file, not a forecast store"),
    ("deleted refs", "its branch references (refs/) are gone"),
    ("deleted branch", "its 'main' branch reference (refs/branch.main) is gone; its tags survive"),
    ("truncated snapshots", "cannot read the store"),
    ("truncated manifests", "could not be read or written"),
    ("truncated chunks", "could not be read or written"),
])
def test_a_damaged_store_is_one_line_and_exit_2(small_store: Path, tmp_path: Path, kind: str, needle: str) -> None:
    store = _damaged(small_store, tmp_path, kind)
    proc = subprocess.run([sys.executable, "-m", "pipeline", "query", "point", str(store), "-V", "temperature",
                           "--level", "850", "--lat", "10", "--lon", "20"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_creating_a_store_below_a_file_is_one_error(tmp_path: Path) -> None:
    from pipeline.errors import UserError
    from pipeline.forecast_store import ForecastStore

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match="is a file, so nothing can be written below it"):
        ForecastStore.create(tmp_path / "a_file" / "f.icechunk")


def test_creating_a_store_on_a_read_only_file_system_is_one_error(read_only_dir: Path) -> None:
    """Icechunk itself would panic (a Rust panic, not an exception) on a read-only file system."""
    from pipeline.errors import UserError
    from pipeline.forecast_store import ForecastStore

    with pytest.raises(UserError, match="read-only file system"):
        ForecastStore.create(read_only_dir / "f.icechunk")


def test_a_cycle_committed_but_not_tagged_is_tagged_by_the_rerun(tmp_path: Path) -> None:
    from pipeline.forecast_store import ForecastStore, synthetic_forecast

    store = ForecastStore.create(tmp_path / "f.icechunk")
    cycle = synthetic_forecast("2020-01-01T00", **SMALL)
    result = store.append_cycle(cycle, provenance=PROV, tag=False)  # the writer died before its tag
    assert result.action == "written" and store.repo.list_tags() == set()
    again = store.append_cycle(cycle, provenance=PROV)
    assert again.action == "skipped" and again.tag == "cycle-20200101T0000"
    assert store.repo.lookup_tag("cycle-20200101T0000") == result.snapshot_id
    assert store.append_cycle(cycle, provenance=PROV).tag is None  # tagged once, not again
