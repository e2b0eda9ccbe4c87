"""``velocast train weather``: fit the conditional model on a training store with the core loop.

The store's times are split into a training period and a validation period (the last
``validation_fraction`` of the times, or explicit dates). Every ``validate_every`` steps a small
ensemble is rolled out from validation init times and scored with the latitude-weighted fair CRPS in
normalised units (mean over channels and leads): ``val/crps`` in ``metrics.jsonl``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from pydantic import Field

from models.objectives import objective_json
from models.training.loop import TrainConfig, TrainResult, train
from pipeline.config import StrictModel
from pipeline.evaluation.ensemble import crps
from pipeline.files import check_writable, training_directory
from pipeline.weather.modeling.data import Normalisation, WeatherWindows, dynamic_channels
from pipeline.weather.modeling.features import DEFAULT_FORCINGS, ForcingName
from pipeline.weather.modeling.model import (
    NetworkConfig,
    build_network,
    forecaster_metadata,
    objective_for,
)
from pipeline.weather.modeling.rollout import Forecaster, rollout
from pipeline.weather.schema import SOLAR_FORCING_ATTR
from pipeline.weather.store import open_training_store

log = logging.getLogger(__name__)


class ValidationConfig(StrictModel):
    """The small validation ensemble scored during training."""

    init_times: int = Field(4, description="validation init times")
    members: int = Field(4, description="ensemble members")
    lead_steps: int = Field(4, description="model steps rolled out")
    sampler: str = "euler"
    sampler_steps: int = 4


class WeatherTrainConfig(StrictModel):
    """Everything ``velocast train weather`` needs (YAML-loadable; flags override)."""

    data: str = Field(description="training store (Zarr) written by `velocast ingest weather`")
    variables: list[str] | None = Field(None, description="variables to model (default: all dynamic ones)")
    step_hours: float = Field(6.0, description="model step in hours (a multiple of the data spacing)")
    train_end: str | None = Field(None, description="last training time (default: by validation_fraction)")
    validation_end: str | None = Field(None, description="last validation time (default: the end of the store)")
    validation_fraction: float = Field(0.1, description="last fraction of the times kept for validation")
    network: NetworkConfig = NetworkConfig()
    forcings: list[ForcingName] | None = Field(
        None, description="clock forcing fields the model conditions on: toa_insolation (over the step), local_time "
                          "(sin/cos); [] for none; default: both, unless the store says its atmosphere has no sun "
                          "(the plain embedded atmosphere, `solar_forcing: false`)")
    train: TrainConfig = Field(TrainConfig(steps=3000, batch_size=16, lr=5e-4, warmup_steps=100, ema_decay=0.995,
                                     log_every=25, checkpoint_every=250, validate_every=500, amp="native"),
                               description="the training loop; train.objective is 'fm' (flow matching, the default), "
                                           "any core preset, or 'mse' (the deterministic baseline)")
    validation: ValidationConfig = ValidationConfig()


def split_times(times: pd.DatetimeIndex, *, train_end: str | None, fraction: float) -> pd.Timestamp:
    """The last training time: ``train_end`` or the time before the final ``fraction`` of the record."""
    if train_end is not None:
        return pd.Timestamp(train_end)
    cut = int(round(len(times) * (1 - fraction)))
    return times[max(2, min(cut, len(times) - 1)) - 1]


def _validation_callback(forecaster: Forecaster, windows: WeatherWindows, config: ValidationConfig):  # type: ignore[no-untyped-def]
    """Fair CRPS of a small ensemble on validation windows, in normalised units."""
    steps = config.lead_steps
    stride = windows.stride
    usable = windows.starts[windows.starts + steps * stride < len(windows.times)]
    if usable.size == 0:
        return None
    picks = usable[np.linspace(0, usable.size - 1, min(config.init_times, usable.size)).astype(int)]
    physical = windows.normalisation.decode
    history = np.stack([physical(windows.z[picks - stride]), physical(windows.z[picks])], axis=1)
    truth_z = np.stack([windows.z[picks + (k + 1) * stride] for k in range(steps)], axis=1)  # (N, L, C, H, W)

    def validate(step: int, ema_net) -> dict[str, float]:  # type: ignore[no-untyped-def]
        forecaster.net = ema_net
        result = rollout(forecaster, history=history, init_times=windows.times[picks], n_steps=steps,
                         members=1 if forecaster.deterministic else config.members, sampler=config.sampler,
                         sampler_steps=config.sampler_steps, seed=12345)
        z = np.stack([[windows.normalisation.encode(result.states[n, k]) for k in range(steps)]
                      for n in range(len(picks))])  # (N, L, M, C, H, W)
        dims = ("init_time", "lead_time", "member", "channel", "latitude", "longitude")
        fc = xr.DataArray(z, dims=dims, coords={"latitude": windows.latitude})
        obs = xr.DataArray(truth_z, dims=dims[:2] + dims[3:], coords={"latitude": windows.latitude})
        score = crps(fc, obs, preserve_dims=("lead_time",))
        out = {"crps": float(score.mean())}
        out.update({f"crps_lead{k + 1}": float(v) for k, v in enumerate(score.values)})
        return out

    return validate


def train_weather(config: WeatherTrainConfig, *, out: str | Path, progress: bool = True,
                  on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train (or resume) a weather model into run directory ``out`` (``on_step(step)`` after every step)."""
    check_writable(out)  # before any work: a run that cannot be saved never starts
    store = open_training_store(config.data)
    channels = dynamic_channels(store, config.variables)
    times = pd.DatetimeIndex(store["time"].values)
    last_train = split_times(times, train_end=config.train_end, fraction=config.validation_fraction)
    step = pd.Timedelta(hours=config.step_hours)
    train_part = store.sel(time=slice(None, last_train))
    valid_end = pd.Timestamp(config.validation_end) if config.validation_end else None
    valid_part = store.sel(time=slice(last_train + pd.Timedelta(1, "ns"), valid_end))
    forcings = config.forcings
    if forcings is None:
        forcings = [] if store.attrs.get(SOLAR_FORCING_ATTR) is False else list(DEFAULT_FORCINGS)
    windows = WeatherWindows.from_dataset(train_part, channels, step=step, forcings=forcings)
    normalisation: Normalisation = windows.normalisation
    log.info("clock forcings: %s", ", ".join(windows.forcings) or "none (the data's atmosphere has no sun)")
    log.info("training on %d windows (%s → %s), %d channels, grid %dx%d", len(windows.starts), times[0],
             last_train, windows.channels, len(windows.latitude), len(windows.longitude))

    torch.manual_seed(config.train.seed)  # the initial weights are part of the run
    net = build_network(config.network, channels=windows.channels, condition_channels=windows.condition_channels,
                        latitude=windows.latitude, longitude=windows.longitude)
    objective_name = objective_json(config.train.objective)
    objective = objective_for(config.train.objective)
    metadata = forecaster_metadata(
        network=config.network, net=net, objective=objective_name, channels=channels, normalisation=normalisation,
        static=windows.static, latitude=windows.latitude, longitude=windows.longitude, step=step, data=config.data,
        forcings=windows.forcings,
    )
    validate = None
    if config.train.validate_every and valid_part.sizes["time"] >= 3:
        valid_windows = WeatherWindows.from_dataset(valid_part, channels, step=step, normalisation=normalisation,
                                                    forcings=windows.forcings)
        forecaster = Forecaster(net=net, objective=objective, normalisation=normalisation, static=windows.static,
                                latitude=windows.latitude, longitude=windows.longitude, channels=channels, step=step,
                                forcings=windows.forcings)
        validate = _validation_callback(forecaster, valid_windows, config.validation)
    source = windows.source(batch_size=config.train.batch_size, seed=config.train.seed)
    with training_directory(out, config_json=config.model_dump_json(indent=1)):
        return train(net=net, data=source, config=config.train, run_dir=out, objective=objective, validate=validate,
                     progress=progress, extra=metadata, on_step=on_step)
