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


def _neighbour_indices(train_times: pd.DatetimeIndex, valid: pd.Timestamp, window_days: float) -> np.ndarray:
    """Indices of training times at the same hour and within ``window_days`` of ``valid``'s day of year."""
    same_hour = np.flatnonzero((train_times.hour == valid.hour) & (train_times.minute == valid.minute))
    if same_hour.size == 0:
        raise ValueError(f"the training period has no state at {valid:%H:%M} UTC")
    doy = (train_times.day_of_year[same_hour] - 1).to_numpy(dtype=float)
    distance = _day_of_year_distance(np.array([valid.day_of_year - 1.0]), doy)[0]
    near = same_hour[distance <= window_days]
    return near if near.size else same_hour


def climatology_mean_at(train: xr.Dataset, times: Sequence, *, window_days: float = 15.0) -> xr.Dataset:
    """The climatological mean at each of ``times`` (a dataset with a ``time`` dim)."""
    train_times = pd.DatetimeIndex(train["time"].values)
    loaded = train.load()
    slices = []
    for valid in pd.DatetimeIndex(times):
        idx = _neighbour_indices(train_times, valid, window_days)
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
    train_times = pd.DatetimeIndex(train["time"].values)
    loaded = train.load()
    rng = np.random.default_rng(seed)
    per_init = []
    for start in init:
        per_lead = []
        for lead in leads:
            idx = _neighbour_indices(train_times, start + lead, window_days)
            draw = rng.choice(idx, size=members, replace=idx.size < members)
            per_lead.append(loaded.isel(time=draw).rename(time="member").assign_coords(member=np.arange(members)))
        per_init.append(xr.concat(per_lead, dim="lead_time"))
    forecast = xr.concat(per_init, dim="init_time")
    forecast = forecast.assign_coords(init_time=init.values, lead_time=leads.values)
    return forecast.transpose("init_time", "lead_time", "member", ...)


def _squared_error_by_init(deterministic: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Latitude-weighted mean squared error per init time, lead (and level) of a one-member forecast."""
    from pipeline.evaluation.weather import truth_at_valid_times

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
        scale = sigma[name].broadcast_like(base).transpose(*base.dims)
        noise = rng.standard_normal(base.shape).astype(base.dtype)
        out[name] = base + scale.values.astype(base.dtype) * noise
    return xr.Dataset(out, attrs=deterministic.attrs)
