"""The clock as forcing: TOA insolation and local time as condition fields, recorded in the checkpoint and
rebuilt for any valid time; a regional grid of odd size trains and forecasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.weather.modeling.data import WeatherWindows, dynamic_channels
from pipeline.weather.modeling.features import (
    DEFAULT_FORCINGS,
    cos_zenith,
    forcing_channels,
    forcing_fields,
    toa_insolation,
)
from pipeline.weather.modeling.model import load_forecaster
from pipeline.weather.modeling.rollout import rollout
from pipeline.weather.modeling.train import train_weather
from tests.pipeline.weather.modeling.conftest import tiny_config

HOUR = pd.Timedelta(hours=1)


def test_sun_overhead_at_the_subsolar_point_and_dark_on_the_night_side():
    """At the March equinox, 12 UTC: cos ζ ≈ 1 at (0°, 0°), ≈ 0 at the terminator (±90°) and negative at 180°;
    the insolation over one hour at (0°, 0°) is ≈ (r₀/r)²·cos(7.5°), none at midnight."""
    t = [pd.Timestamp("2021-03-20T12:00")]
    mu = cos_zenith(t, np.array([0.0]), np.array([0.0, 90.0, 180.0]))[0, 0]
    assert mu[0] == pytest.approx(1.0, abs=2e-3) and abs(mu[1]) < 0.01 and mu[2] < -0.99
    noon = toa_insolation(["2021-03-20T12:30"], np.array([0.0]), np.array([0.0]), step=HOUR)[0, 0, 0]
    assert noon == pytest.approx((1 + 0.033 * np.cos(2 * np.pi * 79 / 365)) * 0.9995, abs=3e-3)
    night = toa_insolation(["2021-03-20T00:30"], np.array([0.0]), np.array([0.0]), step=HOUR)[0, 0, 0]
    assert night == 0.0


def test_polar_day_and_night_follow_the_season():
    """On 21 June the North Pole is lit all day and the South Pole dark all day."""
    times = pd.date_range("2021-06-21", periods=24, freq="h")
    ins = toa_insolation(times, np.array([-89.0, 89.0]), np.array([0.0, 120.0]), step=HOUR)
    assert (ins[:, 1] > 0.3).all() and (ins[:, 0] == 0).all()


def test_forcing_fields_have_the_declared_channels_and_local_time_follows_longitude():
    lat, lon = np.linspace(40, 60, 5), np.array([-15.0, 0.0, 15.0])
    fields = forcing_fields(DEFAULT_FORCINGS, ["2021-01-01T06"], lat, lon, step=6 * HOUR)
    assert fields.shape == (1, forcing_channels(DEFAULT_FORCINGS), 5, 3) == (1, 3, 5, 3)
    angle = np.arctan2(fields[0, 1, 0], fields[0, 2, 0])  # sin, cos of local solar time
    hours = np.mod(angle * 24 / (2 * np.pi), 24)
    np.testing.assert_allclose(hours, [5.0, 6.0, 7.0], atol=1e-5)
    with pytest.raises(ValueError, match="unknown forcing"):
        forcing_channels(["moonlight"])


def regional_store(path, *, nlat: int = 33, nlon: int = 49, days: int = 4) -> str:
    """An hourly regional store across 0° (−10…2, 33×49) with a diurnal cycle in 2 m temperature."""
    rng = np.random.default_rng(0)
    time = pd.date_range("2021-07-01", periods=24 * days, freq="h")
    lat, lon = np.linspace(48, 56, nlat), np.linspace(-10, 2, nlon)
    local = (time.hour.to_numpy()[:, None] + lon[None, :] / 15.0) / 24.0
    t2m = 285 + 5 * np.sin(2 * np.pi * (local - 0.375))[:, None, :] + rng.normal(0, 0.3, (len(time), nlat, nlon))
    ds = xr.Dataset({"2m_temperature": (("time", "latitude", "longitude"), t2m.astype("f4"), {"units": "K"}),
                     "land_sea_mask": (("latitude", "longitude"), (rng.random((nlat, nlon)) > 0.5).astype("f4"))},
                    coords={"time": time, "latitude": lat, "longitude": lon})
    ds.to_zarr(path, zarr_format=3, consolidated=False)
    return str(path)


def test_a_regional_odd_grid_trains_and_the_checkpoint_records_forcings_and_grid(tmp_path):
    """33×49 regional hourly data trains (padded to 36×52, bounded longitude), the checkpoint records the
    forcings, the pad/crop plan and the domain, and a forecast rebuilds the forcings for its valid times."""
    data = regional_store(tmp_path / "regional.zarr")
    config = tiny_config(data, 3).model_copy(update={"step_hours": 1.0})
    train_weather(config, out=tmp_path / "run", progress=False)
    forecaster, _ = load_forecaster(tmp_path / "run")
    meta = forecaster.metadata
    assert tuple(meta["forcings"]) == DEFAULT_FORCINGS == forecaster.forcings
    assert meta["grid"]["shape"] == [33, 49] and meta["grid"]["padded_shape"] == [34, 50]
    assert meta["grid"]["periodic_longitude"] is False and meta["extent"]["kind"] == "regional"
    store = xr.open_zarr(data)
    windows = WeatherWindows.from_dataset(store, dynamic_channels(store), step=HOUR, forcings=forecaster.forcings)
    history = windows.normalisation.decode(np.stack([windows.z[[10, 11]]]))
    result = rollout(forecaster, history=history, init_times=windows.times[[11]], n_steps=3, members=2,
                     sampler="euler", sampler_steps=2, seed=0)
    assert result.states.shape == (1, 3, 2, 1, 33, 49) and np.isfinite(result.states).all()


def test_a_model_without_forcings_records_none_and_loads(store_path, tmp_path):
    """`forcings: []` (the condition every checkpoint before the clock had) trains, records [] and loads with
    the matching number of condition channels."""
    config = tiny_config(store_path, 2).model_copy(update={"forcings": []})
    train_weather(config, out=tmp_path / "plain", progress=False)
    forecaster, _ = load_forecaster(tmp_path / "plain")
    assert forecaster.forcings == () and forecaster.metadata["forcings"] == []
    assert forecaster.net.conditioner.condition_channels == 2 * len(forecaster.channels) + forecaster.static.shape[0]


def test_data_without_a_sun_train_without_clock_forcings_by_default(tmp_path):
    """A store that says its atmosphere has no sun (the plain embedded atmosphere: `solar_forcing: false`) trains
    without the clock forcings unless asked; one that says nothing (real data) gets them."""
    from tests.pipeline.weather.modeling.conftest import small_store

    sunless = tmp_path / "sunless.zarr"
    small_store(times=30).assign_attrs(solar_forcing=False).to_zarr(sunless, zarr_format=3, consolidated=False)
    train_weather(tiny_config(str(sunless), 2), out=tmp_path / "a", progress=False)
    assert load_forecaster(tmp_path / "a")[0].forcings == ()
    asked = tiny_config(str(sunless), 2).model_copy(update={"forcings": ["local_time"]})
    train_weather(asked, out=tmp_path / "b", progress=False)
    assert load_forecaster(tmp_path / "b")[0].forcings == ("local_time",)


def test_the_embedded_atmosphere_records_whether_it_has_a_sun(tmp_path, monkeypatch):
    """Ingesting the builtin atmosphere writes `solar_forcing`: false for plain Held–Suarez, true with diurnal
    heating."""
    from pipeline.weather.ingest import ingest
    from pipeline.weather.recipe import Recipe

    monkeypatch.setenv("VELOCAST_CACHE", str(tmp_path / "cache"))
    for heating, expected in ((0, False), (20, True)):
        recipe = Recipe.model_validate({
            "sources": [{"path": f"builtin:held-suarez?days=0.5&spinup_days=0&diurnal_heating_k_per_day={heating}"}],
            "variables": {"surface_pressure": {}}})
        store = ingest(recipe, tmp_path / f"hs{heating}.zarr", progress=False)
        assert xr.open_zarr(store).attrs["solar_forcing"] is expected
