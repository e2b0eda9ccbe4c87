"""Spread calibration: the noise scale inflates the ensemble spread, noise memory makes it grow with
lead, the fit lands where the validation spread/skill ratio is near 1, and forecasts pick the recorded
λ and ρ up by default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.weather.forecasting.calibrate import CalibrateConfig, calibrate_spread, recorded_noise
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


def test_noise_memory_makes_the_spread_grow_with_lead(fm_run, store_path) -> None:
    """With ρ near 1 a member keeps nearly the same noise at every step, so its deviations add up
    coherently: the spread after several steps is larger than with fresh noise (ρ = 0); the first step,
    with nothing to remember yet, is unchanged."""
    forecaster, _ = load_forecaster(fm_run)
    truth = open_training_store(store_path)
    inits = pd.DatetimeIndex([pd.Timestamp("2000-01-02T00")])
    history = initial_history(forecaster, truth, inits)
    runs = {rho: rollout(forecaster, history=history, init_times=inits, n_steps=4, members=8, sampler="euler",
                         sampler_steps=2, noise_memory=rho).states for rho in (0.0, 0.95)}
    np.testing.assert_allclose(runs[0.95][:, 0], runs[0.0][:, 0], rtol=1e-5, atol=1e-4)
    spread = {rho: float(states[:, -1].std(axis=1).mean()) for rho, states in runs.items()}
    assert spread[0.95] > 1.1 * spread[0.0]


def test_calibration_improves_spread_skill_and_forecasts_use_it(fm_run, store_path, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(fm_run, run)
    record = calibrate_spread(CalibrateConfig(
        model=str(run), data=store_path, init_times=["2000-01-02T00/2000-01-04T00/24h"], members=4,
        lead_hours=18, min_lead_hours=6, sampler="euler", sampler_steps=2, noise_memories=[0.0, 0.5], iterations=2))
    history = record["history"]
    assert len(history) == 4 and history[0]["noise_scale"] == 1.0 and history[0]["noise_memory"] == 0.0
    assert [h["noise_memory"] for h in history] == [0.0, 0.0, 0.5, 0.5]
    # the chosen pair stays closer to SSR = 1 at every lead than the uncalibrated rollout
    chosen = max(abs(np.log(record["validation_ssr_by_lead"])))
    assert chosen <= history[0]["max_abs_log_ssr"] + 1e-9
    saved = json.loads((run / "calibration.json").read_text())
    assert (saved["noise_scale"], saved["noise_memory"]) == (record["noise_scale"], record["noise_memory"])
    assert recorded_noise(run, run / "checkpoints" / "x") == pytest.approx((record["noise_scale"], record["noise_memory"]))
    assert recorded_noise(fm_run, Path(fm_run) / "checkpoints" / "x") == (1.0, 0.0)
    with pytest.raises(ValueError, match="noise memories"):
        calibrate_spread(CalibrateConfig(model=str(run), data=store_path, init_times=["2000-01-02T00"],
                                         lead_hours=12, min_lead_hours=6, noise_memories=[1.0]))


def test_calibration_refuses_a_deterministic_model(mse_run, store_path) -> None:
    with pytest.raises(ValueError, match="deterministic"):
        calibrate_spread(CalibrateConfig(model=str(mse_run), data=store_path, init_times=["2000-01-02T00"],
                                         lead_hours=12, min_lead_hours=6))
