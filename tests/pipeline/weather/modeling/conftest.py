"""Shared tiny weather data and trained runs (training once per session keeps these tests fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.weather.modeling.model import NetworkConfig
from pipeline.weather.modeling.train import ValidationConfig, WeatherTrainConfig, train_weather


def small_store(times: int = 24, drop: int | None = None) -> xr.Dataset:
    """Random fields on an 8 × 16 grid: two temperature levels, surface pressure and a land–sea mask."""
    rng = np.random.default_rng(0)
    time = pd.date_range("2000-01-01", periods=times, freq="6h")
    if drop is not None:
        time = time.delete(drop)
    lat, lon = np.linspace(-78.75, 78.75, 8), np.arange(0, 360, 22.5)
    t = 250 + 10 * rng.normal(size=(len(time), 2, 8, 16))
    sp = 1e5 + 500 * rng.normal(size=(len(time), 8, 16))
    return xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"), t),
         "surface_pressure": (("time", "latitude", "longitude"), sp),
         "land_sea_mask": (("latitude", "longitude"), (rng.random((8, 16)) > 0.5).astype(float))},
        coords={"time": time, "level": [500, 850], "latitude": lat, "longitude": lon},
    )


def tiny_config(store_path: str, steps: int, objective: str = "fm") -> WeatherTrainConfig:
    return WeatherTrainConfig.model_validate({
        "data": store_path,
        "network": NetworkConfig(base_channels=8, channel_mults=[1, 2], blocks_per_level=1).model_dump(),
        "train": {"objective": objective, "steps": steps, "batch_size": 4, "lr": 1e-3, "warmup_steps": 2, "log_every": 1,
                  "checkpoint_every": 2, "validate_every": 3, "seed": 3},
        "validation": ValidationConfig(init_times=2, members=2, lead_steps=2, sampler_steps=2).model_dump(),
    })


@pytest.fixture(scope="session")
def store_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weather") / "train.zarr"
    small_store(times=40).to_zarr(path, zarr_format=3, consolidated=False)
    return str(path)


@pytest.fixture(scope="session")
def fm_run(store_path, tmp_path_factory) -> Path:
    """A flow-matching run trained for 4 steps (validation at step 3, checkpoints at 2 and 4)."""
    run = tmp_path_factory.mktemp("runs") / "fm"
    train_weather(tiny_config(store_path, 4), out=run, progress=False)
    return run


@pytest.fixture(scope="session")
def mse_run(store_path, tmp_path_factory) -> Path:
    """A deterministic (mse) run trained for 2 steps."""
    run = tmp_path_factory.mktemp("runs") / "det"
    train_weather(tiny_config(store_path, 2, objective="mse"), out=run, progress=False)
    return run
