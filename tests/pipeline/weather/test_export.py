"""`velocast export weather STORE --to wb2 OUT`: WeatherBench2's forecast layout as plain Zarr that xarray
opens without velocast (time, prediction_timedelta, realization, valid_time, CF names), the same numbers as
the store, one member dropped to a deterministic layout, and an existing or unwritable output refused in one
line with nothing half-written. Stores hold SYNTHETIC data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.forecast_store import ForecastStore, synthetic_forecast

PROV = {"source": "synthetic test data", "config": {}, "checkpoint": None, "data_snapshot": None}
INITS = ("2020-01-01T00", "2020-01-01T12")


def _store(path: Path, *, members: int) -> Path:
    store = ForecastStore.create(path)
    for init in INITS:
        store.append_cycle(synthetic_forecast(init, members=members, leads=3, grid=(12, 7)), provenance=PROV)
    return path


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", "export", "weather", *args, "--no-progress"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_the_store_itself_carries_valid_time_and_cf_names(tmp_path: Path) -> None:
    ds = ForecastStore.open(_store(tmp_path / "fc.icechunk", members=3)).dataset()
    assert ds["valid_time"].dims == ("init_time", "lead_time")
    np.testing.assert_array_equal(ds["valid_time"].values, (ds["init_time"] + ds["lead_time"]).values)
    assert ds["temperature"].attrs["standard_name"] == "air_temperature"
    assert ds["init_time"].attrs["standard_name"] == "forecast_reference_time"
    assert ds["lead_time"].attrs["standard_name"] == "forecast_period"
    assert ds["level"].attrs["units"] == "hPa" and ds["latitude"].attrs["units"] == "degrees_north"


def test_export_to_wb2_is_weatherbench2s_layout_with_the_stores_numbers(tmp_path: Path) -> None:
    store = _store(tmp_path / "fc.icechunk", members=3)
    done = _export(str(store), str(tmp_path / "wb2.zarr"), "--to", "wb2")
    assert done.returncode == 0, done.stderr
    assert "wb2 layout" in done.stdout
    out = xr.open_zarr(tmp_path / "wb2.zarr")  # plain xarray, no velocast
    assert out["temperature"].dims == ("time", "prediction_timedelta", "realization", "level", "latitude",
                                       "longitude")
    assert out["valid_time"].dims == ("time", "prediction_timedelta")
    assert out["time"].attrs["standard_name"] == "forecast_reference_time"
    assert out["temperature"].attrs["units"] == "K"
    source = ForecastStore.open(store).dataset()
    np.testing.assert_array_equal(out["temperature"].values,
                                  source["temperature"].transpose("init_time", "lead_time", "member", ...).values)
    np.testing.assert_array_equal(out["valid_time"].values, source["valid_time"].values)
    assert out.chunks["time"] == (1, 1) and out.chunks["latitude"] == (out.sizes["latitude"],)


def test_a_one_member_store_exports_without_a_realization_dimension(tmp_path: Path) -> None:
    store = _store(tmp_path / "det.icechunk", members=1)
    assert _export(str(store), str(tmp_path / "det.zarr")).returncode == 0
    out = xr.open_zarr(tmp_path / "det.zarr")
    assert "realization" not in out.dims and out["temperature"].dims[:2] == ("time", "prediction_timedelta")


def test_an_existing_or_unwritable_output_is_one_line_and_nothing_is_left(tmp_path: Path) -> None:
    store = _store(tmp_path / "fc.icechunk", members=2)
    (tmp_path / "taken.zarr").mkdir()
    (tmp_path / "taken.zarr" / "keep.txt").write_text("mine")
    taken = _export(str(store), str(tmp_path / "taken.zarr"))
    assert taken.returncode == 2 and "--overwrite" in taken.stderr and len(taken.stderr.strip().splitlines()) == 1
    assert (tmp_path / "taken.zarr" / "keep.txt").read_text() == "mine"
    (tmp_path / "a-file").write_text("not a directory")
    blocked = _export(str(store), str(tmp_path / "a-file" / "out.zarr"))  # the output's parent is a file
    assert blocked.returncode == 2 and "cannot write" in blocked.stderr, blocked.stderr
    assert len(blocked.stderr.strip().splitlines()) == 1 and (tmp_path / "a-file").read_text() == "not a directory"
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no staging directory left


def test_a_missing_store_is_one_line(tmp_path: Path) -> None:
    missing = _export(str(tmp_path / "nope.icechunk"), str(tmp_path / "x.zarr"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr
    assert not (tmp_path / "x.zarr").exists()
