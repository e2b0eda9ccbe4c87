"""``velocast evaluate weather``: score velocast and every baseline on the same cases, write the report.

Systems (all on velocast's init times and leads):

- ``velocast``: the forecast store under test.
- ``persistence``: the analysis at the init time.
- ``climatology``: an ensemble (as many members as velocast) of states from before the first init time
  at the same hour of day and within ``window_days`` of the day of year.
- ``deterministic``: a deterministic (``--objective mse``) forecast store, when given.
- ``deterministic_noise``: that forecast plus Gaussian noise, its std per channel and lead calibrated
  leave-one-out on the other init times (no case calibrates on itself).
- ``perfect_model``: the perturbed-initial-state ensemble of the true simulator, when given.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field

from pipeline.config import StrictModel
from pipeline.weather import baselines
from pipeline.weather.metrics import score_systems
from pipeline.weather.report import write_report

log = logging.getLogger(__name__)


class EvaluateConfig(StrictModel):
    """Options of ``velocast evaluate weather``."""

    forecast: str = Field(description="velocast forecast store (Icechunk)")
    truth: str = Field(description="analysis / truth store (Zarr), covering the valid times")
    deterministic: str | None = Field(None, description="forecast store of the deterministic (mse) model")
    perfect_model: str | None = Field(None, description="perfect-model ensemble store (embedded atmosphere)")
    variables: list[str] | None = Field(None, description="variables to score (default: all forecast ones)")
    window_days: float = Field(15.0, description="day-of-year half window of the climatology")
    seed: int = 0


def open_forecast(path: str) -> xr.Dataset:
    """A forecast store: an Icechunk forecast store, or a plain Zarr store in the forecast schema.

    Lazy without Dask: loading reads each variable whole, far faster than a task per (small) chunk.
    """
    from pipeline.forecast_store import ForecastStore

    location = Path(path)
    if not location.exists():
        raise FileNotFoundError(f"{path}: forecast store not found")
    if (location / "zarr.json").exists():
        return xr.open_zarr(location, consolidated=False, chunks=None)
    store = ForecastStore.open(path)
    store.dataset()  # the store's own checks (a store without cycles is a UserError)
    return xr.open_zarr(store.session().store, consolidated=False, zarr_format=3, decode_timedelta=True,
                        chunks=None)


def network_calls_per_step(path: str) -> int | None:
    """The network calls per forecast step a velocast forecast store's first cycle records (None for a
    plain Zarr store or a cycle that records none)."""
    from pipeline.forecast_store import ForecastStore

    if (Path(path) / "zarr.json").exists():
        return None
    store = ForecastStore.open(path)
    first = store.init_times()[0]
    value = store.provenance(first).get("nfe_per_step")
    return None if value is None else int(value)


def _align(system: xr.Dataset, reference: xr.Dataset, name: str, variables: list[str]) -> xr.Dataset:
    """``system`` on the reference's init times and leads; a KeyError names what is missing."""
    missing_vars = [v for v in variables if v not in system]
    if missing_vars:
        raise KeyError(f"{name} has no variable {missing_vars[0]!r}")
    for coord in ("init_time", "lead_time"):
        wanted = reference[coord].values
        have = system[coord].values
        absent = np.setdiff1d(wanted, have)
        if absent.size:
            raise KeyError(f"{name} lacks {coord} {absent[0]}")
    # loaded whole first: one read per variable beats an orthogonal selection from the store
    return system[variables].load().sel(init_time=reference["init_time"].values,
                                        lead_time=reference["lead_time"].values)


def evaluate_weather(config: EvaluateConfig, *, out: str | Path, progress: bool = True) -> dict:
    """Score every available system and write ``metrics.json``, ``report.md`` and plots into ``out``
    (``progress`` is part of every verb's contract; scoring takes seconds and shows no bar)."""
    from pipeline.weather.store import open_training_store

    velocast = open_forecast(config.forecast)
    # sorted: a store lists its variables in no fixed order, and the noise draws follow this order
    variables = config.variables or sorted(str(v) for v in velocast.data_vars)
    velocast = velocast[variables].load()
    open_training_store(config.truth)  # its checks (a missing store is a UserError)
    truth = xr.open_zarr(config.truth, chunks=None)[variables].load()  # read once; everything below reuses it
    init = pd.DatetimeIndex(velocast["init_time"].values)
    leads = velocast["lead_time"].values
    members = int(velocast.sizes.get("member", 1))
    history = truth.sel(time=slice(None, init[0] - pd.Timedelta(1, "ns")))
    if history.sizes["time"] == 0:
        raise ValueError("the truth store has no times before the first init time to build a climatology from")

    systems: dict[str, xr.Dataset] = {"velocast": velocast}
    systems["persistence"] = baselines.persistence(truth, init_times=init, lead_times=leads)
    systems["climatology"] = baselines.climatology_ensemble(
        history, init_times=init, lead_times=leads, members=members, window_days=config.window_days,
        seed=config.seed,
    )
    notes = [f"Climatology: {members}-member draws from {history.sizes['time']} states before "
             f"{init[0]:%Y-%m-%d %H}Z (same hour, ±{config.window_days:g} days of year)."]
    if config.deterministic:
        det = _align(open_forecast(config.deterministic), velocast, "the deterministic forecast", variables)
        systems["deterministic"] = det
        sigma = baselines.leave_one_out_noise(det, truth)
        systems["deterministic_noise"] = baselines.deterministic_plus_noise(
            det, sigma=sigma, members=members, seed=config.seed + 1)
        notes.append("deterministic_noise: Gaussian noise with std = the deterministic RMSE per channel and lead, "
                     "calibrated leave-one-out over init times.")
    if config.perfect_model:
        perfect = _align(open_forecast(config.perfect_model), velocast, "the perfect-model ensemble", variables)
        systems["perfect_model"] = perfect
    valid_times = np.unique((init.values[:, None] + leads[None, :]).ravel())
    climatology = baselines.climatology_mean_at(history, valid_times, window_days=config.window_days)
    metrics = score_systems(systems, truth, variables=variables, climatology=climatology)
    # the climatological forecast's anomaly is zero, so its ACC is 0 by definition; the draws' sampling noise
    # would give a meaningless number instead
    metrics["scores"]["climatology"]["acc"] = {c: [None] * len(leads) for c in metrics["variables"]}
    metrics["nfe_per_step"] = network_calls_per_step(config.forecast)
    write_report(metrics, Path(out), forecast=velocast, truth=truth, notes=notes)
    return metrics
