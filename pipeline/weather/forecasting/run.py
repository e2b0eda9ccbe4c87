"""``velocast run weather``: the whole weather pipeline on the embedded Held–Suarez atmosphere.

simulate (+ ingest) → train the flow-matching model and the deterministic (MSE) baseline → forecast
both from the test init times → perfect-model ensemble from the same init times → evaluate.

Periods (simulation time starts 2000-01-01T00 after the spin-up): training, then ``validation_days``
of validation, then the test init times every ``init_spacing_hours``; the record extends ``lead_days``
past the last init time so every lead has a truth.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd
from pydantic import Field

from models.training.loop import TrainConfig
from pipeline.config import StrictModel
from pipeline.weather.forecasting.evaluate import EvaluateConfig, evaluate_weather
from pipeline.weather.forecasting.forecast import ForecastConfig, forecast_weather
from pipeline.weather.forecasting.model import NetworkConfig
from pipeline.weather.forecasting.train import ValidationConfig, WeatherTrainConfig, train_weather

log = logging.getLogger(__name__)


class RunWeatherConfig(StrictModel):
    """Sizes of the end-to-end run (defaults: ≤ 20 minutes on 2 CPU cores)."""

    seed: int = 0
    train_days: float = Field(365.0, description="simulated days used for training")
    spinup_days: float = Field(300.0, description="simulated spin-up discarded before the record")
    validation_days: float = 10.0
    init_times: int = Field(20, description="test init times")
    init_spacing_hours: int = Field(48, description="hours between test init times")
    lead_days: float = 5.0
    members: int = 10
    sampler: str = "heun"
    sampler_steps: int = 4
    network: NetworkConfig = NetworkConfig()
    train: TrainConfig = TrainConfig(steps=4000, batch_size=16, lr=5e-4, warmup_steps=100, ema_decay=0.995,
                                     log_every=25, checkpoint_every=500, validate_every=1000, max_minutes=9.0)
    deterministic_train: TrainConfig = TrainConfig(steps=1500, batch_size=16, lr=5e-4, warmup_steps=100,
                                                   ema_decay=0.995, log_every=25, checkpoint_every=500,
                                                   validate_every=0, max_minutes=3.0)
    validation: ValidationConfig = ValidationConfig()

    @classmethod
    def quick(cls) -> RunWeatherConfig:
        """The same path at toy sizes (≤ 3 minutes): short spin-up, tiny network, few steps."""
        return cls(
            train_days=40.0, spinup_days=20.0, validation_days=3.0, init_times=3, init_spacing_hours=24,
            lead_days=1.0, members=4, sampler="euler", sampler_steps=2,
            network=NetworkConfig(base_channels=8, channel_mults=[1, 2], blocks_per_level=1, attention=False),
            train=TrainConfig(steps=40, batch_size=8, lr=1e-3, warmup_steps=5, log_every=10, checkpoint_every=20,
                              validate_every=20, max_minutes=1.0),
            deterministic_train=TrainConfig(steps=20, batch_size=8, lr=1e-3, warmup_steps=5, log_every=10,
                                            checkpoint_every=20, validate_every=0, max_minutes=0.5),
            validation=ValidationConfig(init_times=2, members=2, lead_steps=2, sampler_steps=2),
        )

    def periods(self) -> tuple[pd.Timestamp, pd.Timestamp, pd.DatetimeIndex, float]:
        """(last training time, last validation time, test init times, simulated days after spin-up)."""
        start = pd.Timestamp("2000-01-01T00")
        train_end = start + pd.Timedelta(days=self.train_days) - pd.Timedelta(hours=6)
        valid_end = train_end + pd.Timedelta(days=self.validation_days)
        first_init = valid_end + pd.Timedelta(hours=12)
        inits = pd.date_range(first_init, periods=self.init_times, freq=pd.Timedelta(hours=self.init_spacing_hours))
        last_valid = inits[-1] + pd.Timedelta(days=self.lead_days)
        days = (last_valid - start) / pd.Timedelta(days=1) + 0.25
        return train_end, valid_end, inits, float(days)


def run_weather(config: RunWeatherConfig, *, out: str | Path, progress: bool = True) -> dict:
    """Run every stage into ``out``; returns the metrics. Finished stages are reused on a re-run."""
    from pipeline.weather.simulate.api import simulate_training_store
    from pipeline.weather.simulate.ensemble import perfect_model_ensemble, write_forecast_zarr

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_config.json").write_text(config.model_dump_json(indent=1))
    train_end, valid_end, inits, days = config.periods()
    timings: dict[str, float] = {}

    def stage(name: str):  # type: ignore[no-untyped-def]
        log.info("[bold]%s[/]", name, extra={"markup": True})
        return time.monotonic()

    t = stage("simulate + ingest the Held–Suarez atmosphere")
    truth = out / "atmosphere.zarr"
    if not truth.exists():
        simulate_training_store(out=truth, days=days, seed=config.seed, spinup_days=config.spinup_days,
                                progress=progress)
    timings["simulate"] = time.monotonic() - t

    lead = f"{config.lead_days * 24:g}h"
    init_specs = [ts.isoformat() for ts in inits]
    for name, objective, train_config in (("model", "fm", config.train),
                                          ("deterministic", "mse", config.deterministic_train)):
        t = stage(f"train the {'flow-matching' if objective == 'fm' else 'deterministic (mse)'} model")
        train_weather(
            WeatherTrainConfig(data=str(truth), objective=objective, network=config.network, train=train_config,
                               train_end=str(train_end), validation_end=str(valid_end),
                               validation=config.validation),
            out=out / name, progress=progress,
        )
        timings[f"train_{name}"] = time.monotonic() - t

    t = stage("forecast: velocast ensemble")
    forecast = forecast_weather(
        ForecastConfig(model=str(out / "model"), data=str(truth), init_times=init_specs, members=config.members,
                       lead=lead, sampler=config.sampler, sampler_steps=config.sampler_steps, seed=config.seed),
        out=out / "forecast.icechunk", progress=progress,
    )
    timings["forecast"] = time.monotonic() - t
    t = stage("forecast: deterministic baseline")
    forecast_weather(
        ForecastConfig(model=str(out / "deterministic"), data=str(truth), init_times=init_specs, lead=lead,
                       seed=config.seed),
        out=out / "deterministic_forecast.icechunk", progress=progress,
    )
    timings["forecast_deterministic"] = time.monotonic() - t

    t = stage("perfect-model ensemble")
    perfect = out / "perfect_model.zarr"
    if not perfect.exists():
        ensemble = perfect_model_ensemble(truth=truth, init_times=inits, members=config.members,
                                          lead=pd.Timedelta(days=config.lead_days), seed=config.seed,
                                          progress=progress)
        write_forecast_zarr(ensemble, perfect)
    timings["perfect_model"] = time.monotonic() - t

    t = stage("evaluate")
    metrics = evaluate_weather(
        EvaluateConfig(forecast=str(out / "forecast.icechunk"), truth=str(truth),
                       deterministic=str(out / "deterministic_forecast.icechunk"), perfect_model=str(perfect),
                       seed=config.seed),
        out=out,
    )
    timings["evaluate"] = time.monotonic() - t
    metrics["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    metrics["nfe_per_step"] = forecast.nfe_per_step
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics
