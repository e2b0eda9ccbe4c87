"""Weather training end to end on a tiny store: checkpoints with metadata, validation CRPS, resume,
and a loaded forecaster that rolls out."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.weather.forecasting.model import NetworkConfig, load_forecaster
from pipeline.weather.forecasting.rollout import rollout
from pipeline.weather.forecasting.train import ValidationConfig, WeatherTrainConfig, train_weather
from tests.pipeline.weather.forecasting.test_data_and_rollout import small_store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("weather") / "train.zarr"
    small_store(times=40).to_zarr(path, zarr_format=3, consolidated=False)
    return str(path)


def config(store_path: str, steps: int, objective: str = "fm") -> WeatherTrainConfig:
    return WeatherTrainConfig.model_validate({
        "data": store_path,
        "objective": objective,
        "network": NetworkConfig(base_channels=8, channel_mults=[1, 2], blocks_per_level=1).model_dump(),
        "train": {"steps": steps, "batch_size": 4, "lr": 1e-3, "warmup_steps": 2, "log_every": 1,
                  "checkpoint_every": 2, "validate_every": 3, "seed": 3},
        "validation": ValidationConfig(init_times=2, members=2, lead_steps=2, sampler_steps=2).model_dump(),
    })


def test_train_validate_checkpoint_and_forecast(store_path, tmp_path) -> None:
    run = tmp_path / "run"
    result = train_weather(config(store_path, 4), out=run, progress=False)
    assert result.step == 4
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("val/crps" in line and np.isfinite(line["val/crps"]) for line in lines)
    forecaster, ckpt = load_forecaster(run)
    assert ckpt.name == "step_00000004"
    assert [c.name for c in forecaster.channels] == ["temperature_500", "temperature_850", "surface_pressure"]
    history = np.zeros((1, 2, 3, 8, 16), dtype=np.float32) + forecaster.normalisation.mean.reshape(1, 1, 3, 1, 1)
    out = rollout(forecaster, history=history, init_times=pd.DatetimeIndex(["2000-01-03"]), n_steps=2, members=2,
                  sampler="euler", sampler_steps=2)
    assert out.states.shape == (1, 2, 2, 3, 8, 16) and np.isfinite(out.states).all()


def test_resume_continues_the_same_run(store_path, tmp_path) -> None:
    """A run interrupted after its step-2 checkpoint and resumed ends bitwise equal to the uninterrupted
    run (CPU), and a second run from scratch with the same seed is identical too."""
    import shutil

    import torch

    straight = train_weather(config(store_path, 4), out=tmp_path / "a", progress=False)
    again = train_weather(config(store_path, 4), out=tmp_path / "b", progress=False)
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step_00000004")  # as if killed after step 2's checkpoint
    resumed = train_weather(config(store_path, 4), out=tmp_path / "b", progress=False)
    for name, p in straight.net.state_dict().items():
        assert torch.equal(p, again.net.state_dict()[name]), name
        assert torch.equal(p, resumed.net.state_dict()[name]), name


def test_deterministic_model_trains_with_mse(store_path, tmp_path) -> None:
    train_weather(config(store_path, 2, objective="mse"), out=tmp_path / "det", progress=False)
    forecaster, _ = load_forecaster(tmp_path / "det")
    assert forecaster.deterministic
