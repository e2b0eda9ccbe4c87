"""score_systems: the metrics.json schema, channels per level, and agreement with the scores module."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.evaluation import crps
from pipeline.weather.metrics import channel_arrays, score_systems, truth_at_valid_times
from pipeline.weather.baselines import climatology_mean_at, persistence


def synthetic_truth(days: int = 10) -> xr.Dataset:
    rng = np.random.default_rng(0)
    time = pd.date_range("2000-01-01", periods=4 * days, freq="6h")
    lat, lon = np.linspace(-67.5, 67.5, 4), np.arange(0, 360, 45.0)
    t = 250 + rng.normal(size=(time.size, 2, lat.size, lon.size)).cumsum(0)
    sp = 1e5 + 100 * rng.normal(size=(time.size, lat.size, lon.size))
    coords = {"time": time, "level": [500, 850], "latitude": lat, "longitude": lon}
    return xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"), t),
         "surface_pressure": (("time", "latitude", "longitude"), sp)},
        coords=coords,
    )


def test_channels_split_levels_and_keep_surface_names() -> None:
    channels = channel_arrays(synthetic_truth(2))
    assert list(channels) == ["temperature_500", "temperature_850", "surface_pressure"]
    assert "level" not in channels["temperature_500"].dims


def test_truth_at_valid_times_aligns_init_plus_lead() -> None:
    truth = synthetic_truth(3)
    init = truth["time"].values[[0, 2]]
    leads = pd.to_timedelta([6, 12], unit="h").values
    aligned = truth_at_valid_times(truth["surface_pressure"], init, leads)
    assert aligned.dims == ("init_time", "lead_time", "latitude", "longitude")
    np.testing.assert_array_equal(aligned.values[1, 1], truth["surface_pressure"].values[4])
    with pytest.raises(KeyError, match="valid time"):
        truth_at_valid_times(truth["surface_pressure"], truth["time"].values[-1:], leads)


def test_metrics_schema_and_values() -> None:
    truth = synthetic_truth(10)
    init = truth["time"].values[4:20:4]
    leads = pd.to_timedelta([6, 12, 24], unit="h").values
    rng = np.random.default_rng(1)
    persist = persistence(truth, init_times=init, lead_times=leads)
    noisy = persist.isel(member=0, drop=True).expand_dims(member=np.arange(5)).copy(deep=True)
    noisy["temperature"] = noisy["temperature"] + rng.normal(size=noisy["temperature"].shape)
    noisy = noisy.transpose("init_time", "lead_time", "member", ...)
    clim = climatology_mean_at(truth, truth["time"].values)
    metrics = score_systems(
        {"velocast": noisy, "persistence": persist}, truth,
        variables=["temperature", "surface_pressure"], climatology=clim,
    )
    assert metrics["variables"] == ["temperature_500", "temperature_850", "surface_pressure"]
    assert metrics["lead_hours"] == [6, 12, 24]
    assert metrics["members"] == {"velocast": 5, "persistence": 1}
    assert set(metrics["scores"]["velocast"]) == {"crps", "rmse", "ssr", "acc"}
    assert all(v is None for v in metrics["scores"]["persistence"]["ssr"]["temperature_500"])
    # CRPS of the channel agrees with the scoring function applied directly.
    obs = truth_at_valid_times(truth["temperature"].sel(level=850, drop=True), init, leads)
    direct = crps(noisy["temperature"].sel(level=850, drop=True), obs)
    np.testing.assert_allclose(metrics["scores"]["velocast"]["crps"]["temperature_850"], direct.values)
    hist = metrics["rank_histograms"]["velocast"]["temperature_500"]
    assert len(hist) == 3 and len(hist[0]) == 6
    np.testing.assert_allclose(np.sum(hist, axis=1), 1.0)


def test_channel_with_missing_truth_is_scored_nan_aware() -> None:
    """A NaN in the truth sends the channel through the NaN-skipping xarray scores, not the array kernel."""
    truth = synthetic_truth(10)
    truth["temperature"][5, 1, 2, 3] = np.nan
    init = truth["time"].values[4:20:4]
    leads = pd.to_timedelta([6, 12], unit="h").values
    rng = np.random.default_rng(2)
    persist = persistence(truth.fillna(250.0), init_times=init, lead_times=leads)
    noisy = persist.isel(member=0, drop=True).expand_dims(member=np.arange(4)).copy(deep=True)
    noisy["temperature"] = noisy["temperature"] + rng.normal(size=noisy["temperature"].shape)
    noisy = noisy.transpose("init_time", "lead_time", "member", ...)
    metrics = score_systems({"velocast": noisy}, truth, variables=["temperature"])
    obs = truth_at_valid_times(truth["temperature"].sel(level=850, drop=True), init, leads)
    direct = crps(noisy["temperature"].sel(level=850, drop=True), obs)
    assert np.isfinite(direct.values).all()
    np.testing.assert_allclose(metrics["scores"]["velocast"]["crps"]["temperature_850"], direct.values)
