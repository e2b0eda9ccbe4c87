"""Spread calibration: the noise scale inflates the ensemble spread, noise memory makes it grow with
lead, the fit takes the lowest-CRPS (λ, ρ) of its grid and then λ per variable at each variable's CRPS
minimum, and forecasts pick the recorded λ and ρ up by default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.weather.modeling.calibrate import (
    CalibrateConfig,
    calibrate_spread,
    fit_spread_factors,
    per_variable_minima,
    record_spread_factors,
    recorded_noise,
)
from pipeline.weather.modeling.rollout import initial_history
from pipeline.weather.modeling.model import load_forecaster
from pipeline.weather.modeling.rollout import channel_noise_scales, rollout, scale_spread
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


def test_calibration_picks_the_lowest_crps_of_the_grid_and_forecasts_use_it(fm_run, store_path, tmp_path) -> None:
    """One rollout per (λ, ρ) of the grid; while the minimum sits at an edge of the λ grid, one more λ beyond
    it (× or ÷ 1.5, at most 3); then at most one with λ per variable; the lowest CRPS of them all wins, and the
    record is what forecasts use."""
    run = tmp_path / "run"
    shutil.copytree(fm_run, run)
    record = calibrate_spread(CalibrateConfig(
        model=str(run), data=store_path, init_times=["2000-01-02T00/2000-01-04T00/24h"], members=4,
        lead_hours=18, min_lead_hours=6, sampler="euler", sampler_steps=2, noise_scales=[0.5, 1.0],
        noise_memories=[0.0, 0.5]))
    history = record["history"]
    grid = history[:4]
    assert [(h["noise_scale"], h["noise_memory"]) for h in grid] == [(0.5, 0.0), (1.0, 0.0), (0.5, 0.5), (1.0, 0.5)]
    extended = [h for h in history[4:] if not isinstance(h["noise_scale"], dict)]
    assert len(extended) <= 3 and all(isinstance(h["noise_scale"], dict) for h in history[4 + len(extended):])
    grid_best = min(grid, key=lambda h: h["crps"])
    # a grid of two λ has its minimum at an edge: the first extra λ steps beyond that edge
    edge = grid_best["noise_scale"]
    assert extended and extended[0]["noise_scale"] in (round(edge * 1.5, 4), round(edge / 1.5, 4))
    assert extended[0]["noise_memory"] == grid_best["noise_memory"]
    assert record["noise_scales"] == [0.5, 1.0] and set(record["noise_scales_tried"]) >= {0.5, 1.0}
    best = min(history, key=lambda h: h["crps"])
    assert (record["noise_scale"], record["noise_memory"]) == (best["noise_scale"], best["noise_memory"])
    assert record["validation_crps"] == best["crps"]
    assert set(best["crps_by_variable"]) == set(record["validation_ssr_by_lead"])
    saved = json.loads((run / "calibration.json").read_text())
    assert (saved["noise_scale"], saved["noise_memory"]) == (record["noise_scale"], record["noise_memory"])
    assert recorded_noise(run, run / "checkpoints" / "x") == (record["noise_scale"], record["noise_memory"])
    assert recorded_noise(fm_run, Path(fm_run) / "checkpoints" / "x") == (1.0, 0.0)
    with pytest.raises(ValueError, match="noise memories"):
        calibrate_spread(CalibrateConfig(model=str(run), data=store_path, init_times=["2000-01-02T00"],
                                         lead_hours=12, min_lead_hours=6, noise_memories=[1.0]))


def test_per_variable_lambda_sits_at_each_variables_crps_minimum() -> None:
    """Each variable's λ is the vertex of the parabola in log λ through its lowest grid point and the
    neighbours (a symmetric bowl: the middle point), or the grid's edge where the edge is lowest."""
    scales = [0.5, 1.0, 2.0]
    crps = np.array([[0.30, 0.20, 0.10],     # λ 0.5
                     [0.20, 0.25, 0.15],     # λ 1
                     [0.30, 0.40, 0.20]])    # λ 2
    lam = per_variable_minima(scales, crps)
    assert lam[0] == pytest.approx(1.0)  # symmetric in log λ around λ 1
    assert lam[1] == pytest.approx(0.5) and lam[2] == pytest.approx(0.5)  # lowest at the edge
    skewed = per_variable_minima(scales, np.array([[0.30], [0.20], [0.22]]))
    assert 1.0 < skewed[0] < 2.0  # the bowl leans towards the lower neighbour


def test_scale_spread_keeps_the_mean_and_scales_each_lead_and_channel() -> None:
    """Members move about their mean by α[lead, channel]; leads past the fitted ones keep the last α."""
    rng = np.random.default_rng(0)
    states = rng.normal(size=(2, 4, 5, 3, 4, 6)).astype(np.float32)
    factors = np.array([[0.5, 1.0, 2.0], [1.0, 1.0, 1.0]])
    scaled = scale_spread(states, factors)
    np.testing.assert_allclose(scaled.mean(axis=2), states.mean(axis=2), atol=1e-5)
    spread = lambda x: x.std(axis=2).mean(axis=(0, 3, 4))  # noqa: E731  (lead, channel)
    np.testing.assert_allclose(spread(scaled)[0] / spread(states)[0], [0.5, 1.0, 2.0], rtol=1e-5)
    np.testing.assert_allclose(spread(scaled)[1:], spread(states)[1:], rtol=1e-5)


def test_spread_factors_shrink_an_overdispersed_channel_and_widen_an_underdispersed_one() -> None:
    """On synthetic forecasts whose members are too wide in channel 0 and too narrow in channel 1, the
    factors bring the spread/skill ratio of every lead to 1 (to the smoothing's precision)."""
    from pipeline.evaluation.ensemble import channel_scores

    rng = np.random.default_rng(1)
    lat = np.linspace(-80, 80, 8)
    center = rng.normal(size=(6, 5, 1, 2, 8, 16))
    width = np.array([1.6, 0.75]).reshape(1, 1, 1, 2, 1, 1)
    states = center + width * rng.normal(size=(6, 5, 8, 2, 8, 16))
    truth = center[:, :, 0] + rng.normal(size=(6, 5, 2, 8, 16))
    factors = fit_spread_factors(states, truth, lat, np.arange(1, 6) * 6.0)
    assert factors.shape == (5, 2)
    assert np.all(factors[:, 0] < 0.8) and np.all(factors[:, 1] > 1.15)
    scaled = scale_spread(states, factors)
    for c in range(2):
        ssr = channel_scores(scaled[:, :, :, c], truth[:, :, c], lat)["ssr"]
        assert abs(ssr.mean() - 1.0) < 0.03 and np.all(np.abs(ssr - 1.0) < 0.1)


def test_calibration_records_spread_factors_that_forecasts_apply(fm_run, store_path, tmp_path) -> None:
    """calibration.json holds α per channel for every validation lead; forecasts store the rescaled members
    (same mean as the raw rollout) and say so in the provenance, --raw-spread stores the raw rollout."""
    from pipeline.forecast_store import ForecastStore
    from pipeline.weather.modeling.generate import ForecastConfig, forecast_weather

    run = tmp_path / "run"
    shutil.copytree(fm_run, run)
    record = calibrate_spread(CalibrateConfig(
        model=str(run), data=store_path, init_times=["2000-01-02T00/2000-01-04T00/24h"], members=4,
        lead_hours=18, min_lead_hours=6, sampler="euler", sampler_steps=2, noise_scales=[0.5, 1.0]))
    block = record["spread_factors"]
    forecaster, _ = load_forecaster(run)
    assert block["leads_hours"] == [6.0, 12.0, 18.0]
    factors = record_spread_factors(record, forecaster.channels, forecaster.step)
    assert factors.shape == (3, len(forecaster.channels)) and np.all((factors >= 0.5) & (factors <= 1.5))
    with pytest.raises(ValueError, match="spread factors do not fit"):
        record_spread_factors(record, forecaster.channels, pd.Timedelta(hours=12))
    stores = {}
    for raw in (False, True):
        cfg = ForecastConfig(model=str(run), data=store_path, init_times=["2000-01-03T00"], members=4, lead="24h",
                             spread_factors=not raw)
        forecast_weather(cfg, out=tmp_path / f"f{raw}", progress=False)
        stores[raw] = ForecastStore.open(tmp_path / f"f{raw}").dataset().load()
    name = forecaster.channels[0].variable
    np.testing.assert_allclose(stores[False][name].mean("member"), stores[True][name].mean("member"), atol=1e-3)
    assert not np.allclose(stores[False][name].std("member"), stores[True][name].std("member"))


def test_calibration_refuses_a_deterministic_model(mse_run, store_path) -> None:
    with pytest.raises(ValueError, match="deterministic"):
        calibrate_spread(CalibrateConfig(model=str(mse_run), data=store_path, init_times=["2000-01-02T00"],
                                         lead_hours=12, min_lead_hours=6))


def test_noise_scale_per_variable_resolves_channels_and_refuses_unknown_names(fm_run) -> None:
    """A mapping gives each channel its channel's or its variable's λ (the channel's own entry wins);
    names the model lacks and channels left without a value are refused before any work."""
    forecaster, _ = load_forecaster(fm_run)
    channels = forecaster.channels
    first = channels[0]
    scale = {c.variable: 0.5 for c in channels} | {first.name: 0.9}
    values = channel_noise_scales(channels, scale)
    assert values[0] == 0.9
    assert all(values[i] == 0.5 for i, c in enumerate(channels) if c.name != first.name)
    np.testing.assert_array_equal(channel_noise_scales(channels, 0.7), np.full(len(channels), 0.7))
    with pytest.raises(ValueError, match="does not have"):
        channel_noise_scales(channels, scale | {"vorticity": 1.0})
    with pytest.raises(ValueError, match="no noise scale"):
        channel_noise_scales(channels, {first.variable: 1.0} if len({c.variable for c in channels}) > 1
                             else {first.name: 1.0})
    with pytest.raises(ValueError, match="positive"):
        channel_noise_scales(channels, -1.0)


def test_a_mapping_of_equal_scales_samples_like_the_scalar(fm_run, store_path) -> None:
    """Per-variable λ is the same draw, only scaled per channel: equal values reproduce the scalar run,
    and a smaller λ for one variable narrows that variable's spread at the first step."""
    forecaster, _ = load_forecaster(fm_run)
    truth = open_training_store(store_path)
    inits = pd.DatetimeIndex([pd.Timestamp("2000-01-02T00")])
    history = initial_history(forecaster, truth, inits)
    variables = list(dict.fromkeys(c.variable for c in forecaster.channels))

    def run(scale):
        return rollout(forecaster, history=history, init_times=inits, n_steps=1, members=6, sampler="euler",
                       sampler_steps=2, noise_scale=scale).states

    np.testing.assert_allclose(run({v: 0.8 for v in variables}), run(0.8), rtol=1e-6, atol=1e-6)
    target = variables[0]
    narrow = run({v: (0.1 if v == target else 0.8) for v in variables})
    wide = run(0.8)
    rows = [i for i, c in enumerate(forecaster.channels) if c.variable == target]
    spread = {name: states[:, 0][:, :, rows].std(axis=1).mean() for name, states in (("narrow", narrow), ("wide", wide))}
    assert spread["narrow"] < 0.8 * spread["wide"]


def test_cli_noise_scale_takes_a_number_or_pairs() -> None:
    from pipeline.weather.domain import parse_noise_scale

    assert parse_noise_scale("0.6") == 0.6
    assert parse_noise_scale("geopotential=0.45, temperature_850=0.6") == {"geopotential": 0.45,
                                                                          "temperature_850": 0.6}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_noise_scale("geopotential=0.4,0.5")


def test_run_stage_reuses_a_matching_calibration_and_redoes_it_for_another_grid(fm_run, store_path, tmp_path) -> None:
    """`velocast run weather`'s calibrate stage is reused when its key (checkpoint, init times, members, sampler,
    ρ, λ grid) matches the recorded one, and calibrates again, from scratch, when the λ grid changes."""
    from pipeline.runs import execute_stage
    from pipeline.weather.run import RUN

    out = tmp_path / "run"
    out.mkdir()
    shutil.copytree(fm_run, out / "model")
    (out / "atmosphere.zarr").symlink_to(store_path)
    config = RUN.configure(values=dict(train_days=2.0, validation_days=2.0, lead_days=0.5, calibration_init_times=1,
                                       calibration_members=2, sampler="euler", sampler_steps=1,
                                       calibration_noise_scales=[0.6, 0.9]))
    layout, stage = RUN.layout(out), RUN.stage("calibrate")
    first = execute_stage(RUN, stage, config, layout)
    path = out / "model" / "calibration.json"
    stamp = path.stat().st_mtime_ns
    again = execute_stage(RUN, stage, config, layout)
    assert again.cached and again.result == first.result and path.stat().st_mtime_ns == stamp
    other = execute_stage(RUN, stage, config.model_copy(update={"calibration_noise_scales": [0.5, 1.0]}), layout)
    assert not other.cached
    record = json.loads(path.read_text())
    assert record["noise_scales"] == [0.5, 1.0]
    assert {h["noise_scale"] for h in record["history"][:2]} == {0.5, 1.0}
