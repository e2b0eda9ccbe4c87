"""Fingerprints: each artefact kind changes when its content does, not when nothing did, and reads no data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.runs import fingerprint
from pipeline.runs.layout import ABSENT


def test_file_and_absent(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    assert fingerprint(path, "file") == ABSENT
    path.write_text("1")
    first = fingerprint(path, "file")
    assert first == fingerprint(path, "file") and first.startswith("sha256:")
    path.write_text("2")
    assert fingerprint(path, "file") != first


def test_zarr_store_changes_with_its_shape_or_attributes_but_not_with_a_read(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    ds = xr.Dataset({"x": (("time",), np.arange(4.0))}, coords={"time": np.arange(4)})
    ds.to_zarr(path, zarr_format=3, consolidated=False)
    first = fingerprint(path, "zarr")
    xr.open_zarr(path).load()
    assert fingerprint(path, "zarr") == first
    ds.isel(time=[0]).assign_coords(time=[9]).to_zarr(path, append_dim="time", zarr_format=3, consolidated=False)
    appended = fingerprint(path, "zarr")
    assert appended != first
    ds.attrs["note"] = "x"
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False)
    assert fingerprint(path, "zarr") not in (first, appended)


def test_run_directory_follows_its_newest_checkpoint(tmp_path: Path) -> None:
    import torch

    from models.training.checkpoint import save_checkpoint

    run = tmp_path / "run"
    assert fingerprint(run, "run") == ABSENT
    run.mkdir()
    assert fingerprint(run, "run") == "none"
    save_checkpoint(run, step=1, model={"w": torch.zeros(3)}, ema={"w": torch.zeros(3)}, optimizer=None, rng={},
                    config={})
    first = fingerprint(run, "run")
    save_checkpoint(run, step=2, model={"w": torch.ones(3)}, ema={"w": torch.ones(3)}, optimizer=None, rng={},
                    config={})
    assert fingerprint(run, "run") not in (first, "none")


def test_icechunk_store_is_its_head_snapshot(tmp_path: Path) -> None:
    from pipeline.forecast_store import ForecastStore, synthetic_forecast
    from tests.pipeline.forecast_store.fs_helpers import PROV

    store = ForecastStore.open_or_create(tmp_path / "f.icechunk")
    store.append_cycle(synthetic_forecast("2020-01-01T00", members=2, leads=2, grid=(8, 5)), provenance=PROV)
    first = fingerprint(tmp_path / "f.icechunk", "icechunk")
    assert first == f"snapshot:{store.head()}"
    store.append_cycle(synthetic_forecast("2020-01-01T06", members=2, leads=2, grid=(8, 5)), provenance=PROV)
    assert fingerprint(tmp_path / "f.icechunk", "icechunk") != first
