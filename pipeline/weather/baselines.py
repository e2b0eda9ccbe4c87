"""Reference forecasts every weather model is verified against.

All return datasets in the forecast schema ``(init_time, lead_time, member, [level], latitude, longitude)``.

- persistence: the state at the initial time, for every lead (one member).
- climatology: states of the training period at the same hour of day and within ``window_days`` of
  the valid time's day of year (circularly); its mean serves ACC, random draws form a climatological
  ensemble. Where the training period has no state near a day of year (a training period shorter than
  a year), every training state at that hour is used.
- deterministic + calibrated noise: a deterministic forecast plus Gaussian noise whose standard
  deviation per channel and lead is the deterministic forecast's own latitude-weighted RMSE on a
  calibration period (so the ensemble's spread matches its skill); :func:`leave_one_out_noise`
  calibrates each case on all the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.evaluation.ensemble import latitude_weights


def _forecast_coords(init_times: Sequence, lead_times: Sequence) -> tuple[pd.DatetimeIndex, pd.TimedeltaIndex]:
    return pd.DatetimeIndex(init_times), pd.TimedeltaIndex(lead_times)


def persistence(truth: xr.Dataset, *, init_times: Sequence, lead_times: Sequence) -> xr.Dataset:
    """The truth at each init time, repeated over the leads, as a one-member forecast."""
    init, leads = _forecast_coords(init_times, lead_times)
    state = truth.sel(time=init.values).rename(time="init_time")
    forecast = state.expand_dims(lead_time=leads.values, member=[0])
    dims_first = ("init_time", "lead_time", "member")
    return forecast.transpose(*dims_first, ...)


def _day_of_year_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = np.abs(a[:, None] - b[None, :]) % 365.25
    return np.minimum(diff, 365.25 - diff)


class _Calendar:
    """Hour, minute and day of year of the training times, computed once for every neighbour look-up."""

    def __init__(self, train_times: pd.DatetimeIndex) -> None:
        self.hour = train_times.hour.to_numpy()
        self.minute = train_times.minute.to_numpy()
        self.day = (train_times.day_of_year - 1).to_numpy(dtype=float)


def _neighbour_indices(train_times: pd.DatetimeIndex | _Calendar, valid: pd.Timestamp,
                       window_days: float) -> np.ndarray:
    """Indices of training times at the same hour and within ``window_days`` of ``valid``'s day of year."""
    calendar = train_times if isinstance(train_times, _Calendar) else _Calendar(train_times)
    same_hour = np.flatnonzero((calendar.hour == valid.hour) & (calendar.minute == valid.minute))
    if same_hour.size == 0:
        raise ValueError(f"the training period has no state at {valid:%H:%M} UTC")
    distance = _day_of_year_distance(np.array([valid.day_of_year - 1.0]), calendar.day[same_hour])[0]
    near = same_hour[distance <= window_days]
    return near if near.size else same_hour


def climatology_mean_at(train: xr.Dataset, times: Sequence, *, window_days: float = 15.0) -> xr.Dataset:
    """The climatological mean at each of ``times`` (a dataset with a ``time`` dim)."""
    calendar = _Calendar(pd.DatetimeIndex(train["time"].values))
    loaded = train.load()
    slices = []
    for valid in pd.DatetimeIndex(times):
        idx = _neighbour_indices(calendar, valid, window_days)
        slices.append(loaded.isel(time=idx).mean("time"))
    return xr.concat(slices, dim="time").assign_coords(time=pd.DatetimeIndex(times).values)


def climatology_ensemble(
    train: xr.Dataset,
    *,
    init_times: Sequence,
    lead_times: Sequence,
    members: int,
    window_days: float = 15.0,
    seed: int = 0,
) -> xr.Dataset:
    """A climatological ensemble: ``members`` training states drawn (without replacement where
    possible) around each valid time's hour and day of year."""
    init, leads = _forecast_coords(init_times, lead_times)
    calendar = _Calendar(pd.DatetimeIndex(train["time"].values))
    rng = np.random.default_rng(seed)
    draws = np.empty((len(init), len(leads), members), dtype=np.intp)  # training-time index per member
    for i, start in enumerate(init):
        for j, lead in enumerate(leads):
            idx = _neighbour_indices(calendar, start + lead, window_days)
            draws[i, j] = rng.choice(idx, size=members, replace=idx.size < members)
    loaded = train.load()
    data_vars = {}
    for name, array in loaded.data_vars.items():
        if "time" not in array.dims:
            data_vars[name] = array
            continue
        array = array.transpose("time", ...)
        data_vars[name] = xr.Variable(("init_time", "lead_time", "member") + array.dims[1:],
                                      array.values[draws], attrs=array.attrs)
    coords = {name: coord for name, coord in loaded.coords.items() if "time" not in coord.dims}
    coords.update(init_time=init.values, lead_time=leads.values, member=np.arange(members))
    return xr.Dataset(data_vars, coords=coords, attrs=loaded.attrs)


def _squared_error_by_init(deterministic: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Latitude-weighted mean squared error per init time, lead (and level) of a one-member forecast."""
    from pipeline.weather.metrics import truth_at_valid_times

    if "member" in deterministic.dims:
        deterministic = deterministic.isel(member=0, drop=True)
    init = deterministic["init_time"].values
    leads = deterministic["lead_time"].values
    errors = {}
    for name, forecast in deterministic.data_vars.items():
        observed = truth_at_valid_times(truth[name], init, leads)
        observed = observed.assign_coords(latitude=forecast["latitude"], longitude=forecast["longitude"])
        error2 = (forecast.astype(np.float64) - observed) ** 2
        weights = latitude_weights(forecast["latitude"])
        errors[name] = error2.weighted(weights).mean(["latitude", "longitude"])
    return xr.Dataset(errors)


def calibrate_noise(deterministic: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Per variable, [level] and lead: the deterministic forecast's latitude-weighted RMSE.

    ``deterministic`` is a forecast (one member or none) on a calibration period covered by ``truth``.
    """
    return np.sqrt(_squared_error_by_init(deterministic, truth).mean("init_time"))


def leave_one_out_noise(deterministic: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Noise std per init time calibrated on all *other* init times (no case calibrates on itself)."""
    errors = _squared_error_by_init(deterministic, truth)
    n = errors.sizes["init_time"]
    if n < 2:
        raise ValueError("leave-one-out calibration needs at least two init times")
    return np.sqrt((errors.sum("init_time") - errors) / (n - 1))


def deterministic_plus_noise(
    deterministic: xr.Dataset, *, sigma: xr.Dataset, members: int, seed: int = 0
) -> xr.Dataset:
    """``members`` copies of a deterministic forecast plus independent Gaussian noise of std ``sigma``."""
    if "member" in deterministic.dims:
        deterministic = deterministic.isel(member=0, drop=True)
    rng = np.random.default_rng(seed)
    out = {}
    for name, forecast in deterministic.data_vars.items():
        base = forecast.expand_dims(member=np.arange(members)).transpose("init_time", "lead_time", "member", ...)
        scale = sigma[name].broadcast_like(base).transpose(*base.dims).values
        values, noisy = base.values, np.empty(base.shape, dtype=base.dtype)
        # one init time at a time: the same draws in the same (C) order as one call for the whole array
        for i in range(base.shape[0]):
            noise = rng.standard_normal(base.shape[1:]).astype(base.dtype)
            noisy[i] = values[i] + scale[i].astype(base.dtype) * noise
        out[name] = base.copy(data=noisy)
    return xr.Dataset(out, attrs=deterministic.attrs)
