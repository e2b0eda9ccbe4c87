"""Spread calibration: the noise scale inflates the ensemble spread, the fit lands where the validation
spread/skill ratio is 1, and forecasts pick the recorded scale up by default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.weather.forecasting.calibrate import CalibrateConfig, calibrate_spread, recorded_noise_scale
from pipeline.weather.forecasting.forecast import initial_history
from pipeline.weather.forecasting.model import load_forecaster
from pipeline.weather.forecasting.rollout import rollout
from pipeline.weather.store import open_training_store


def test_noise_scale_inflates_the_spread(fm_run, store_path) -> None:
    """Doubling λ makes the members differ more (the spread about the mean grows markedly)."""
    forecaster, _ = load_forecaster(fm_run)
    truth = open_training_store(store_path)
    inits = pd.DatetimeIndex([pd.Timestamp("2000-01-02T00")])
    history = initial_history(forecaster, truth, inits)
    spreads = []
    for scale in (0.5, 1.0, 2.0):
        result = rollout(forecaster, history=history, init_times=inits, n_steps=2, members=6, sampler="euler",
                         sampler_steps=2, noise_scale=scale)
        spreads.append(float(result.states[:, -1].std(axis=1).mean()))
    assert spreads[0] < spreads[1] < spreads[2]
    assert spreads[2] > 1.5 * spreads[0]


def test_calibration_reaches_unit_spread_skill_and_forecasts_use_it(fm_run, store_path, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(fm_run, run)
    record = calibrate_spread(CalibrateConfig(
        model=str(run), data=store_path, init_times=["2000-01-02T00/2000-01-04T00/24h"], members=4,
        lead_hours=18, min_lead_hours=6, sampler="euler", sampler_steps=2, iterations=3))
    history = record["history"]
    assert len(history) == 3 and history[0]["noise_scale"] == 1.0
    # the best of the three is closer to SSR = 1 than the uncalibrated rollout
    assert abs(np.log(record["validation_ssr"])) <= abs(np.log(history[0]["ssr"]))
    assert json.loads((run / "calibration.json").read_text())["noise_scale"] == pytest.approx(record["noise_scale"])
    assert recorded_noise_scale(run, run / "checkpoints" / "x") == pytest.approx(record["noise_scale"])
    assert recorded_noise_scale(fm_run, Path(fm_run) / "checkpoints" / "x") == 1.0


def test_calibration_refuses_a_deterministic_model(mse_run, store_path) -> None:
    with pytest.raises(ValueError, match="deterministic"):
        calibrate_spread(CalibrateConfig(model=str(mse_run), data=store_path, init_times=["2000-01-02T00"],
                                         lead_hours=12, min_lead_hours=6))
