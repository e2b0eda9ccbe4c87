"""Weather windows and rollout: normalisation round trips, residual targets, rollout shapes and units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.networks.grid_unet import GridUNet
from models.regression import RegressionObjective
from pipeline.weather.modeling.data import Normalisation, WeatherWindows, dynamic_channels
from pipeline.weather.modeling.features import GLOBAL_FEATURES, time_features
from pipeline.weather.modeling.rollout import Forecaster, forecast_dataset, rollout
from tests.pipeline.weather.modeling.conftest import small_store

STEP = pd.Timedelta("6h")


def test_channels_and_statics_are_found() -> None:
    store = small_store()
    names = [c.name for c in dynamic_channels(store)]
    assert names == ["temperature_500", "temperature_850", "surface_pressure"]
    windows = WeatherWindows.from_dataset(store, dynamic_channels(store), step=STEP)
    assert windows.static.shape == (5, 8, 16)  # 4 grid features + land-sea mask
    assert windows.condition_channels == 2 * 3 + 5


def test_normalisation_round_trips_and_serialises() -> None:
    store = small_store()
    channels = dynamic_channels(store)
    windows = WeatherWindows.from_dataset(store, channels, step=STEP)
    norm = windows.normalisation
    restored = Normalisation.from_json(norm.to_json())
    physical = norm.decode(windows.z)
    np.testing.assert_allclose(physical[:, 2], store["surface_pressure"].values, rtol=1e-5)
    np.testing.assert_allclose(restored.diff_std, norm.diff_std)
    assert abs(windows.z[:, 0].mean()) < 1e-4 and abs(windows.z[:, 0].std() - 1) < 1e-3


def test_residual_target_is_the_scaled_step_difference() -> None:
    store = small_store()
    windows = WeatherWindows.from_dataset(store, dynamic_channels(store), step=STEP)
    residual, condition = windows.example(np.array([5]))
    x = store["temperature"].sel(level=850).values
    expected = (x[6] - x[5]) / windows.normalisation.diff_std[1]
    np.testing.assert_allclose(residual[0, 1].numpy(), expected, rtol=1e-4, atol=1e-4)
    assert condition["fields"].shape == (1, windows.condition_channels, 8, 16)
    assert condition["globals"].shape == (1, GLOBAL_FEATURES)
    np.testing.assert_allclose(condition["globals"][0].numpy(), time_features([store["time"].values[6]])[0])


def test_windows_never_span_a_gap() -> None:
    store = small_store(drop=10)
    windows = WeatherWindows.from_dataset(store, dynamic_channels(store), step=STEP)
    times = windows.times
    for i in windows.starts:
        assert times[i] - times[i - 1] == STEP and times[i + 1] - times[i] == STEP
    assert len(windows.starts) == len(times) - 2 - 2  # the two windows centred beside the gap go


def make_forecaster(windows: WeatherWindows, objective) -> Forecaster:
    net = GridUNet(in_channels=windows.channels, out_channels=windows.channels,
                   condition_channels=windows.condition_channels, global_features=GLOBAL_FEATURES,
                   base_channels=8, channel_mults=(1, 2), blocks_per_level=1)
    return Forecaster(net=net, objective=objective, normalisation=windows.normalisation, static=windows.static,
                      latitude=windows.latitude, longitude=windows.longitude,
                      channels=list(dynamic_channels(small_store())), step=STEP)


def test_zero_residual_model_is_persistence_in_physical_units() -> None:
    """An untrained deterministic model (zero-initialised head) predicts r = 0: every lead equals the
    initial state, which checks de-normalisation end to end."""
    store = small_store()
    windows = WeatherWindows.from_dataset(store, dynamic_channels(store), step=STEP)
    forecaster = make_forecaster(windows, RegressionObjective())
    physical = windows.normalisation.decode(windows.z)
    history = np.stack([physical[[3, 7]], physical[[4, 8]]], axis=1)
    init = store["time"].values[[4, 8]]
    result = rollout(forecaster, history=history, init_times=init, n_steps=3, members=1)
    assert result.states.shape == (2, 3, 1, 3, 8, 16)
    for k in range(3):
        np.testing.assert_allclose(result.states[:, k, 0], history[:, 1], rtol=1e-5)
    ds = forecast_dataset(result, forecaster, init_times=init)
    assert ds["temperature"].dims == ("init_time", "lead_time", "member", "level", "latitude", "longitude")
    assert ds["surface_pressure"].attrs["units"] == "Pa"
    assert list(ds["lead_time"].values.astype("timedelta64[h]").astype(int)) == [6, 12, 18]
    np.testing.assert_allclose(ds["temperature"].sel(level=850).values[1, 2, 0], store["temperature"].sel(level=850).values[8],
                               rtol=1e-5)


def test_flow_model_members_differ_and_are_reproducible() -> None:
    from models.objectives import make_objective

    store = small_store()
    windows = WeatherWindows.from_dataset(store, dynamic_channels(store), step=STEP)
    forecaster = make_forecaster(windows, make_objective("fm"))
    physical = windows.normalisation.decode(windows.z)
    history = np.stack([physical[[3]], physical[[4]]], axis=1)
    kwargs = dict(history=history, init_times=store["time"].values[[4]], n_steps=2, members=3,
                  sampler="euler", sampler_steps=2, seed=7)
    first, second = rollout(forecaster, **kwargs), rollout(forecaster, **kwargs)
    np.testing.assert_array_equal(first.states, second.states)
    assert not np.allclose(first.states[0, 0, 0], first.states[0, 0, 1])
    assert first.nfe_per_step == 2
    with pytest.raises(ValueError, match="history"):
        rollout(forecaster, **{**kwargs, "history": history[:, :1]})
