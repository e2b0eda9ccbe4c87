"""Score weather forecast systems against the truth, in the ``metrics.json`` schema.

Forecasts are datasets in the forecast schema: dims ``(init_time, lead_time, member, [level], latitude,
longitude)`` (a deterministic system has one member). The truth is a dataset with dims ``(time, [level],
latitude, longitude)``. Variables are scored per channel — a variable at one level is named
``{variable}_{level}`` (``geopotential_500``), a surface variable keeps its name.

Schema of the result (also written as ``metrics.json``)::

    {"variables": ["geopotential_500", ...], "lead_hours": [6, 12, ...],
     "systems": [...], "members": {SYSTEM: M}, "n_init_times": N,
     "scores": {SYSTEM: {METRIC: {VARIABLE: [value per lead]}}},
     "rank_histograms": {SYSTEM: {VARIABLE: [[freq per rank] per lead]}},
     "units": {VARIABLE: units of the truth}}

METRIC is ``crps`` (fair), ``rmse`` (debiased ensemble mean), ``ssr`` (unbiased spread/skill, null for
one member) and ``acc`` (when a climatology is given); see :mod:`pipeline.evaluation.ensemble`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.evaluation import ensemble

METRICS: tuple[str, ...] = ("crps", "rmse", "ssr", "acc")


def channel_arrays(dataset: xr.Dataset, *, variables: Sequence[str] | None = None) -> dict[str, xr.DataArray]:
    """Split a dataset into channels: ``{variable}_{level}`` for level variables, the name otherwise."""
    channels: dict[str, xr.DataArray] = {}
    for name in variables or list(dataset.data_vars):
        array = dataset[name]
        if "level" in array.dims:
            for level in array["level"].values:
                channels[f"{name}_{int(level)}"] = array.sel(level=level, drop=True)
        else:
            channels[str(name)] = array
    return channels


def truth_at_valid_times(truth: xr.DataArray, init_times: np.ndarray, lead_times: np.ndarray) -> xr.DataArray:
    """The truth at ``init_time + lead_time``, with dims ``(init_time, lead_time, ...)``.

    Raises ``KeyError`` naming the first valid time the truth does not cover.
    """
    init = pd.DatetimeIndex(init_times)
    leads = pd.TimedeltaIndex(lead_times)
    valid = np.array([[i + lead for lead in leads] for i in init], dtype="datetime64[ns]")
    available = pd.DatetimeIndex(truth["time"].values)
    missing = ~np.isin(valid.ravel(), available.values)
    if missing.any():
        raise KeyError(f"the truth has no data at valid time {pd.Timestamp(valid.ravel()[missing][0])}")
    flat = truth.sel(time=valid.ravel())
    stacked = flat.data.reshape((len(init), len(leads)) + flat.shape[1:])
    dims = ("init_time", "lead_time") + flat.dims[1:]
    coords = {k: v for k, v in flat.coords.items() if k != "time" and "time" not in v.dims}
    return xr.DataArray(stacked, dims=dims, coords={**coords, "init_time": init.values, "lead_time": leads.values})


def lead_hours(lead_times: np.ndarray) -> list[float]:
    """Lead times as hours (integers where exact)."""
    hours = pd.TimedeltaIndex(lead_times).total_seconds() / 3600.0
    return [int(h) if float(h).is_integer() else float(h) for h in hours]


def _values(array: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(array, dtype=float)]


_GRID_DIMS: tuple[str, ...] = ("init_time", "lead_time", "member", "latitude", "longitude")


def _truth_on(truth: xr.Dataset, variables: Sequence[str], valid_times: np.ndarray) -> xr.Dataset:
    """The truth's ``variables`` at those of ``valid_times`` it has, in memory (one read per variable)."""
    available = truth["time"].values
    present = np.unique(valid_times[np.isin(valid_times, available)])
    subset = truth[[v for v in variables if v in truth]]
    if not np.array_equal(present, available):
        subset = subset.sel(time=present)
    return subset.compute()


def _valid_times(init_times: np.ndarray, lead_times: np.ndarray) -> np.ndarray:
    return (np.asarray(init_times, dtype="datetime64[ns]")[:, None]
            + np.asarray(lead_times, dtype="timedelta64[ns]")[None, :]).ravel()


def _channel_scores_xarray(fc: xr.DataArray, obs: xr.DataArray, clim: xr.DataArray | None) -> dict[str, np.ndarray]:
    """The same scores as :func:`ensemble.channel_scores` through the xarray functions (NaN-aware)."""
    out = {"crps": ensemble.crps(fc, obs).values, "rmse": ensemble.ensemble_mean_rmse(fc, obs).values,
           "ssr": ensemble.spread_skill_ratio(fc, obs).values}
    if clim is not None:
        out["acc"] = ensemble.acc(fc, obs, clim).values
    if fc.sizes["member"] > 1:
        out["rank_histogram"] = ensemble.rank_histogram(fc, obs).transpose("lead_time", "rank").values
    return out


def score_system(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    *,
    variables: Sequence[str],
    climatology: xr.Dataset | None = None,
) -> tuple[dict[str, dict[str, list[float | None]]], dict[str, list[list[float]]]]:
    """Scores of one system: ``{METRIC: {CHANNEL: [per lead]}}`` and rank histograms per channel.

    Each variable of the forecast, the truth and the climatology is read once; a channel with finite
    values on the usual grid dims is scored by :func:`ensemble.channel_scores` in one pass, any other
    through the xarray score functions.
    """
    if "member" not in forecast.dims:
        forecast = forecast.expand_dims(member=[0])
    init_times = forecast["init_time"].values
    leads = forecast["lead_time"].values
    valid = _valid_times(init_times, leads)
    truth = _truth_on(truth, variables, valid)
    if climatology is not None:
        climatology = _truth_on(climatology, variables, valid)
    forecast = forecast[list(variables)].compute()
    forecast_channels = channel_arrays(forecast, variables=variables)
    truth_channels = channel_arrays(truth, variables=variables)
    clim_channels = channel_arrays(climatology, variables=variables) if climatology is not None else {}
    scores: dict[str, dict[str, list[float | None]]] = {metric: {} for metric in METRICS}
    histograms: dict[str, list[list[float]]] = {}
    for channel, fc in forecast_channels.items():
        if channel not in truth_channels:
            raise KeyError(f"the truth has no channel {channel!r}")
        fc = fc.transpose("init_time", "lead_time", "member", ...)
        obs = truth_at_valid_times(truth_channels[channel], init_times, leads)
        obs = obs.assign_coords(latitude=fc["latitude"], longitude=fc["longitude"])
        clim = None
        if channel in clim_channels:
            clim = truth_at_valid_times(clim_channels[channel], init_times, leads)
            clim = clim.assign_coords(latitude=fc["latitude"], longitude=fc["longitude"])
        arrays = [fc, obs] + ([clim] if clim is not None else [])
        if set(fc.dims) == set(_GRID_DIMS) and all(np.isfinite(a.values).all() for a in arrays):
            grid = _GRID_DIMS[:2] + _GRID_DIMS[3:]
            result = ensemble.channel_scores(
                fc.transpose(*_GRID_DIMS).values, obs.transpose(*grid).values, fc["latitude"].values,
                climatology=None if clim is None else clim.transpose(*grid).values)
        else:
            result = _channel_scores_xarray(fc.astype(np.float64), obs.astype(np.float64),
                                            None if clim is None else clim.astype(np.float64))
        for metric in ("crps", "rmse", "ssr"):
            scores[metric][channel] = _values(result[metric])
        scores["acc"][channel] = _values(result["acc"]) if "acc" in result else [None] * len(leads)
        if "rank_histogram" in result:
            histograms[channel] = [[float(v) for v in row] for row in result["rank_histogram"]]
    return scores, histograms


def score_systems(
    forecasts: Mapping[str, xr.Dataset],
    truth: xr.Dataset,
    *,
    variables: Sequence[str],
    climatology: xr.Dataset | None = None,
) -> dict:
    """Score every system on the same init times and leads; returns the ``metrics.json`` mapping.

    ``climatology`` (for ACC) is a dataset on the truth's ``time`` axis: the climatological mean at
    each time (see :func:`pipeline.weather.baselines.climatology_mean_at`).
    """
    if not forecasts:
        raise ValueError("no forecast systems to score")
    reference = next(iter(forecasts.values()))
    leads = reference["lead_time"].values
    result: dict = {
        "variables": [],
        "lead_hours": lead_hours(leads),
        "systems": list(forecasts),
        "members": {},
        "n_init_times": int(reference.sizes["init_time"]),
        "scores": {},
        "rank_histograms": {},
        "units": {},
    }
    valid = np.concatenate([_valid_times(f["init_time"].values, f["lead_time"].values) for f in forecasts.values()])
    truth = _truth_on(truth, variables, valid)  # read once for every system
    if climatology is not None:
        climatology = _truth_on(climatology, variables, valid)
    for system, forecast in forecasts.items():
        if not np.array_equal(forecast["lead_time"].values, leads):
            raise ValueError(f"system {system!r} has different lead times from {next(iter(forecasts))!r}")
        scores, histograms = score_system(forecast, truth, variables=variables, climatology=climatology)
        result["scores"][system] = scores
        result["rank_histograms"][system] = histograms
        result["members"][system] = int(forecast.sizes.get("member", 1))
        if not result["variables"]:
            result["variables"] = list(scores["crps"])
    result["units"] = {channel: str(array.attrs.get("units") or "")
                       for channel, array in channel_arrays(truth, variables=variables).items()
                       if channel in result["variables"]}
    return result
