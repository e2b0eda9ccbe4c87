"""Baselines: persistence repeats the initial state, climatology respects the hour of day, and the
noise-calibrated deterministic ensemble has spread equal to its calibration error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.evaluation import spread_skill_ratio
from pipeline.weather.metrics import truth_at_valid_times
from pipeline.weather.baselines import (
    calibrate_noise,
    climatology_ensemble,
    climatology_mean_at,
    deterministic_plus_noise,
    persistence,
)


def diurnal_truth(days: int = 40) -> xr.Dataset:
    """A field that is 10 × hour-of-day plus small noise: climatology by hour must recover 10 × hour."""
    rng = np.random.default_rng(0)
    time = pd.date_range("2001-03-01", periods=4 * days, freq="6h")
    lat, lon = np.array([-45.0, 0.0, 45.0]), np.arange(0, 360, 90.0)
    base = (10.0 * time.hour.to_numpy())[:, None, None]
    values = base + 0.1 * rng.normal(size=(time.size, lat.size, lon.size))
    return xr.Dataset({"x": (("time", "latitude", "longitude"), values)},
                      coords={"time": time, "latitude": lat, "longitude": lon})


def test_persistence_repeats_the_initial_state() -> None:
    truth = diurnal_truth(5)
    init = truth["time"].values[[0, 3]]
    forecast = persistence(truth, init_times=init, lead_times=pd.to_timedelta([6, 12], unit="h"))
    assert forecast["x"].dims == ("init_time", "lead_time", "member", "latitude", "longitude")
    np.testing.assert_array_equal(forecast["x"].values[1, 1, 0], truth["x"].values[3])


def test_climatology_matches_the_hour_of_day() -> None:
    truth = diurnal_truth()
    times = pd.DatetimeIndex(["2001-03-10T06", "2001-03-10T18"])
    clim = climatology_mean_at(truth, times)
    np.testing.assert_allclose(clim["x"].values.mean(axis=(1, 2)), [60.0, 180.0], atol=0.1)
    ens = climatology_ensemble(truth, init_times=times[:1], lead_times=pd.to_timedelta([0, 6], unit="h"),
                               members=8)
    assert ens["x"].dims == ("init_time", "lead_time", "member", "latitude", "longitude")
    np.testing.assert_allclose(ens["x"].values[0, 1].mean(), 120.0, atol=0.2)


def test_noise_calibration_gives_spread_equal_to_skill() -> None:
    truth = diurnal_truth(80)
    rng = np.random.default_rng(3)
    init = truth["time"].values[0:300:3]
    leads = pd.to_timedelta([6, 12], unit="h").values
    observed = truth_at_valid_times(truth["x"], init, leads)
    error_std = np.array([0.5, 2.0])[None, :, None, None]
    det = (observed + error_std * rng.normal(size=observed.shape)).expand_dims(member=[0])
    det = xr.Dataset({"x": det.transpose("init_time", "lead_time", "member", ...)})
    sigma = calibrate_noise(det, truth)
    np.testing.assert_allclose(sigma["x"].values, [0.5, 2.0], rtol=0.05)
    ens = deterministic_plus_noise(det, sigma=sigma, members=10, seed=1)
    assert ens.sizes["member"] == 10
    ratio = spread_skill_ratio(ens["x"], observed)
    # Noise on top of an already-wrong forecast: spread sqrt(M+1/M)·σ vs skill σ → SSR ≈ sqrt(1.1)/... ≈ 1.
    assert np.all(np.abs(ratio.values - 1.0) < 0.1)


def test_leave_one_out_noise_excludes_the_case_itself() -> None:
    from pipeline.weather.baselines import leave_one_out_noise

    truth = diurnal_truth(10)
    init = truth["time"].values[0:12:4]
    leads = pd.to_timedelta([6], unit="h").values
    observed = truth_at_valid_times(truth["x"], init, leads)
    offsets = np.array([1.0, 2.0, 4.0])[:, None, None, None]  # uniform error per init time
    det = xr.Dataset({"x": (observed + offsets).expand_dims(member=[0]).transpose("init_time", "lead_time", "member", ...)})
    sigma = leave_one_out_noise(det, truth)
    expected = np.sqrt([(4 + 16) / 2, (1 + 16) / 2, (1 + 4) / 2])
    np.testing.assert_allclose(sigma["x"].transpose("init_time", "lead_time").values[:, 0], expected, rtol=1e-6)


def test_climatology_members_are_training_states_at_the_valid_hour() -> None:
    """Every climatology member is one whole training state at the valid time's hour of day."""
    truth = diurnal_truth(20)
    init = pd.DatetimeIndex(["2001-03-15T00", "2001-03-16T06"])
    leads = pd.to_timedelta([6, 12], unit="h")
    ens = climatology_ensemble(truth, init_times=init, lead_times=leads, members=5, seed=3)
    states = truth["x"].values.reshape(truth.sizes["time"], -1)
    hours = truth["time"].dt.hour.values
    for i, start in enumerate(init):
        for j, lead in enumerate(leads):
            for m in range(5):
                member = ens["x"].values[i, j, m].ravel()
                match = np.flatnonzero((states == member).all(axis=1))
                assert match.size == 1 and hours[match[0]] == (start + lead).hour


def test_noise_is_the_seeded_stream_in_array_order() -> None:
    """The noise equals one ``standard_normal`` call for the whole (init, lead, member, …) array."""
    det = xr.Dataset({"x": (("init_time", "lead_time", "latitude", "longitude"), np.zeros((3, 2, 2, 4), np.float32))})
    sigma = xr.Dataset({"x": xr.ones_like(det["x"].isel(latitude=0, longitude=0, drop=True))})
    ens = deterministic_plus_noise(det, sigma=sigma, members=4, seed=7)
    expected = np.random.default_rng(7).standard_normal((3, 2, 4, 2, 4)).astype(np.float32)
    np.testing.assert_array_equal(ens["x"].values, expected)
