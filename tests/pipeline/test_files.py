"""Writing beside and renaming: a real kill -9 of a real writer never leaves a half output where the output
belongs, never loses the previous output, and what it leaves is removed by the next write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from pipeline.files import _exchange, replace_into
from tests.killing import leftovers, run_killed_at, run_killed_when, velocast
from tests.pipeline.weather.synthetic import era5_like


def test_replacing_a_directory_swaps_it_in_one_step(tmp_path: Path) -> None:
    """On Linux the new directory and the old one swap in one rename (renameat2 RENAME_EXCHANGE), so the
    output path never goes missing; the old contents are removed."""
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a").write_text("new")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b").write_text("old")
    assert _exchange(tmp_path / "new", tmp_path / "out")  # the kernel here supports it
    _exchange(tmp_path / "new", tmp_path / "out")  # swap back, then through the public call
    replace_into(tmp_path / "new", tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (tmp_path / "out" / "a").read_text() == "new"


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    """A recipe over a SYNTHETIC ERA5-like NetCDF big enough that writing its store takes a while."""
    source = tmp_path / "era5.nc"
    era5_like(times=160, nlat=32, nlon=64).to_netcdf(source)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"sources": [{"path": str(source)}], "chunks": {"time": 4},
                                    "variables": {"temperature": {"levels": [500, 850]}, "2m_temperature": {}}}))
    return path


def _same_store(a: Path, b: Path) -> None:
    left, right = xr.open_zarr(a), xr.open_zarr(b)
    assert set(left.data_vars) == set(right.data_vars)
    for name in left.data_vars:
        np.testing.assert_array_equal(left[name].values, right[name].values)


def test_ingest_killed_mid_write_leaves_no_store_and_the_rerun_cleans_up(tmp_path: Path, recipe: Path) -> None:
    """SIGKILL once the temporary store holds its first array: nothing at --out, one temporary beside it;
    the same command then succeeds, removes the temporary and writes the store a clean run writes."""
    out = tmp_path / "train.zarr"
    args = ("ingest", "weather", str(recipe), "--out", str(out), "--no-progress")
    if not run_killed_when(tmp_path, ".train.zarr.tmp-*/temperature/zarr.json", args):
        pytest.skip("the ingest finished before it could be killed (machine too fast)")
    assert not out.exists() and len(leftovers(tmp_path)) == 1
    again = velocast(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert leftovers(tmp_path) == []
    clean = velocast("ingest", "weather", str(recipe), "--out", str(tmp_path / "clean.zarr"), "--no-progress")
    assert clean.returncode == 0, clean.stderr[-2000:]
    _same_store(out, tmp_path / "clean.zarr")


def test_a_killed_overwrite_keeps_the_previous_store(tmp_path: Path, recipe: Path) -> None:
    """SIGKILL with the new store complete but not yet moved into place: the previous store is untouched and
    opens; the rerun replaces it and leaves nothing behind."""
    out = tmp_path / "train.zarr"
    args = ("ingest", "weather", str(recipe), "--out", str(out), "--no-progress", "--overwrite")
    first = velocast(*args[:-1], "--set", "time.end=2020-01-20")
    assert first.returncode == 0, first.stderr[-2000:]
    before = xr.open_zarr(out)["temperature"].values
    run_killed_at("pipeline.weather.store:replace_into", args)
    np.testing.assert_array_equal(xr.open_zarr(out)["temperature"].values, before)
    assert len(leftovers(tmp_path)) == 1
    again = velocast(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert leftovers(tmp_path) == [] and xr.open_zarr(out).sizes["time"] == 160
