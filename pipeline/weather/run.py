"""``velocast run weather``: the whole weather pipeline on the embedded Held–Suarez atmosphere.

simulate (+ ingest) → train the flow-matching model and the deterministic (MSE) baseline → calibrate the
model's sampler noise on validation init times → forecast both from the test init times → perfect-model
ensemble from the same init times → evaluate.

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
from pipeline.weather.modeling.evaluate import EvaluateConfig, evaluate_weather
from pipeline.weather.modeling.generate import ForecastConfig, forecast_weather
from pipeline.weather.modeling.model import NetworkConfig
from pipeline.weather.modeling.rollout import NoiseScale
from pipeline.weather.modeling.train import ValidationConfig, WeatherTrainConfig, train_weather

log = logging.getLogger(__name__)


class RunWeatherConfig(StrictModel):
    """Sizes of the end-to-end run (defaults: ≤ 20 minutes on 2 CPU cores)."""

    seed: int = 0
    train_days: float = Field(365.0, description="simulated days used for training")
    spinup_days: float = Field(200.0, description="simulated spin-up discarded before the record (Held & Suarez "
                                                   "1994 discard 200 days)")
    validation_days: float = 10.0
    init_times: int = Field(20, description="test init times")
    init_spacing_hours: int = Field(48, description="hours between test init times")
    lead_days: float = 5.0
    members: int = 10
    perfect_model_members: int = Field(
        5, ge=2, description="members of the perfect-model reference (fair CRPS does not depend on the count)"
    )
    sampler: str = "heun"
    sampler_steps: int = Field(2, description="sampler steps per 6-h step (heun: 2 network calls each)")
    noise_scale: NoiseScale = Field(
        0.6, description="sampler noise size λ of the forecasts when calibration_init_times is 0 (see "
                         "`velocast calibrate weather`)")
    noise_memory: float = Field(0.6, ge=0, lt=1, description="step-to-step correlation ρ of a member's sampler "
                                                            "noise (see `velocast calibrate weather`)")
    calibration_init_times: int = Field(
        4, ge=0, description="validation init times on which λ (CRPS grid) and the spread factors are fitted before "
                             "forecasting (0: forecast with noise_scale as given)")
    calibration_members: int = Field(8, ge=2)
    calibration_noise_scales: list[float] = Field([0.45, 0.6, 0.8], description="λ grid of the calibration")
    calibration_per_variable: bool = Field(
        False, description="one more calibration rollout with λ per variable (kept only if its CRPS is lower; "
                           "on the default run it moved the CRPS by ≤ 0.3 %, and the spread factors do the rest)")
    spread_factors: bool = Field(True, description="fit the calibration's spread factors (per channel and lead) and "
                                                   "apply them to the stored forecast")
    network: NetworkConfig = NetworkConfig(base_channels=32, channel_mults=[1, 2, 2], blocks_per_level=1)
    train: TrainConfig = TrainConfig(steps=4000, batch_size=16, lr=5e-4, warmup_steps=100, ema_decay=0.995,
                                     log_every=25, checkpoint_every=500, validate_every=1000, max_minutes=6.75)
    deterministic_train: TrainConfig = TrainConfig(steps=1500, batch_size=16, lr=5e-4, warmup_steps=100,
                                                   ema_decay=0.995, log_every=25, checkpoint_every=500,
                                                   validate_every=0, max_minutes=2.0)
    validation: ValidationConfig = ValidationConfig()

    @classmethod
    def quick(cls) -> RunWeatherConfig:
        """The same path at toy sizes (≤ 3 minutes): short spin-up, tiny network, few steps."""
        return cls(
            train_days=40.0, spinup_days=20.0, validation_days=3.0, init_times=3, init_spacing_hours=24,
            lead_days=1.0, members=4, perfect_model_members=4, sampler="euler", sampler_steps=2,
            calibration_init_times=2, calibration_members=4, calibration_noise_scales=[0.6, 0.9],
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

    def calibration_inits(self) -> pd.DatetimeIndex:
        """``calibration_init_times`` init times inside the validation period, spread evenly on the 6-h
        grid, whose conditioning states and every lead's truth lie in that period."""
        train_end, valid_end, _, _ = self.periods()
        first = train_end + pd.Timedelta(hours=12)
        last = valid_end - pd.Timedelta(days=self.lead_days)
        if last < first:
            raise ValueError(f"the validation period ({self.validation_days} days) is too short for "
                             f"{self.lead_days}-day calibration forecasts")
        if self.calibration_init_times == 1:
            return pd.DatetimeIndex([first])
        spacing = ((last - first) / (self.calibration_init_times - 1)).floor("6h")
        if spacing <= pd.Timedelta(0):
            raise ValueError(f"{self.calibration_init_times} calibration init times do not fit the validation period")
        return pd.date_range(first, periods=self.calibration_init_times, freq=spacing)


# -- stages (each one idempotent: a finished stage is reused; the Prefect flow makes each one a task) ------


def stage_simulate(config: RunWeatherConfig, *, out: str | Path, progress: bool = True) -> str:
    """Simulate + ingest the Held–Suarez atmosphere into ``out/atmosphere.zarr``; returns its path."""
    from pipeline.weather.simulate.api import simulate_training_store

    truth = Path(out) / "atmosphere.zarr"
    if not truth.exists():
        days = config.periods()[3]
        simulate_training_store(out=truth, days=days, seed=config.seed, spinup_days=config.spinup_days,
                                progress=progress)
    return str(truth)


def stage_train(config: RunWeatherConfig, *, out: str | Path, name: str, progress: bool = True) -> str:
    """Train ``model`` (flow matching) or ``deterministic`` (mse) into ``out/NAME``; returns the run dir."""
    train_end, valid_end, _, _ = config.periods()
    objective, train_config = {"model": ("fm", config.train), "deterministic": ("mse", config.deterministic_train)}[name]
    train_weather(
        WeatherTrainConfig(data=str(Path(out) / "atmosphere.zarr"), objective=objective, network=config.network,
                           train=train_config, train_end=str(train_end), validation_end=str(valid_end),
                           validation=config.validation),
        out=Path(out) / name, progress=progress,
    )
    return str(Path(out) / name)


def stage_calibrate(config: RunWeatherConfig, *, out: str | Path) -> dict | None:
    """Fit the model's sampler noise λ (grid at ρ = ``noise_memory``, optionally per variable) and the spread
    factors on the validation init times into ``out/model/calibration.json``, which the forecast stage then
    uses; returns the record (``None`` when ``calibration_init_times`` is 0). A calibration of the same checkpoint, init times, members,
    sampler, ρ, λ grid, per-variable and spread-factor settings already in the file is reused."""
    from pipeline.provenance import file_sha256
    from pipeline.weather.modeling.calibrate import CALIBRATION_FILE, CalibrateConfig, calibrate_spread
    from pipeline.weather.modeling.model import load_forecaster

    if config.calibration_init_times == 0:
        return None
    path = Path(out) / "model" / CALIBRATION_FILE
    inits = config.calibration_inits()
    if path.is_file():
        record = json.loads(path.read_text())
        _, checkpoint_dir = load_forecaster(Path(out) / "model")
        wanted = {"checkpoint": f"sha256:{file_sha256(Path(checkpoint_dir) / 'weights.safetensors')}",
                  "init_times": [t.isoformat() for t in inits], "members": config.calibration_members,
                  "noise_memory": config.noise_memory, "sampler": config.sampler,
                  "sampler_steps": config.sampler_steps, "noise_scales": sorted(config.calibration_noise_scales),
                  "per_variable": config.calibration_per_variable}
        if all(record.get(key) == value for key, value in wanted.items()) \
                and bool(record.get("spread_factors")) == config.spread_factors:
            return record
    return calibrate_spread(CalibrateConfig(
        model=str(Path(out) / "model"), data=str(Path(out) / "atmosphere.zarr"),
        init_times=[t.isoformat() for t in inits], members=config.calibration_members,
        lead_hours=config.lead_days * 24, min_lead_hours=min(24.0, config.lead_days * 24),
        sampler=config.sampler, sampler_steps=config.sampler_steps, noise_scales=config.calibration_noise_scales,
        noise_memories=[config.noise_memory], per_variable=config.calibration_per_variable,
        spread_factors=config.spread_factors, seed=config.seed))


def stage_forecast(config: RunWeatherConfig, *, out: str | Path, name: str, progress: bool = True) -> dict:
    """Forecast the test init times with ``out/NAME`` into its store (``forecast.icechunk`` for the model,
    ``deterministic_forecast.icechunk``); returns the store path, cycles written and network calls per step."""
    out = Path(out)
    inits = config.periods()[2]
    init_specs = [ts.isoformat() for ts in inits]
    lead = f"{config.lead_days * 24:g}h"
    if name == "model":
        cfg = ForecastConfig(model=str(out / "model"), data=str(out / "atmosphere.zarr"), init_times=init_specs,
                             members=config.members, lead=lead, sampler=config.sampler,
                             sampler_steps=config.sampler_steps, seed=config.seed,
                             # with a calibration, None: the run's calibration.json (λ per variable, ρ)
                             noise_scale=None if config.calibration_init_times else config.noise_scale,
                             noise_memory=None if config.calibration_init_times else config.noise_memory,
                             spread_factors=config.spread_factors)
        store = out / "forecast.icechunk"
    else:
        cfg = ForecastConfig(model=str(out / name), data=str(out / "atmosphere.zarr"), init_times=init_specs,
                             lead=lead, seed=config.seed)
        store = out / "deterministic_forecast.icechunk"
    summary = forecast_weather(cfg, out=store, progress=progress)
    return {"store": str(store), "written": summary.written, "skipped": summary.skipped,
            "nfe_per_step": summary.nfe_per_step}


def stage_perfect_model(config: RunWeatherConfig, *, out: str | Path, progress: bool = True) -> str:
    """The perfect-model ensemble from the same init times into ``out/perfect_model.zarr``."""
    from pipeline.weather.simulate.ensemble import perfect_model_ensemble, write_forecast_zarr

    perfect = Path(out) / "perfect_model.zarr"
    if not perfect.exists():
        ensemble = perfect_model_ensemble(truth=Path(out) / "atmosphere.zarr", init_times=config.periods()[2],
                                          members=config.perfect_model_members,
                                          lead=pd.Timedelta(days=config.lead_days),
                                          seed=config.seed, progress=progress)
        write_forecast_zarr(ensemble, perfect)
    return str(perfect)


def stage_evaluate(config: RunWeatherConfig, *, out: str | Path) -> dict:
    """Score every system and write ``metrics.json``, ``report.md`` and plots into ``out``; returns metrics."""
    out = Path(out)
    return evaluate_weather(
        EvaluateConfig(forecast=str(out / "forecast.icechunk"), truth=str(out / "atmosphere.zarr"),
                       deterministic=str(out / "deterministic_forecast.icechunk"),
                       perfect_model=str(out / "perfect_model.zarr"), seed=config.seed),
        out=out,
    )


def finish_metrics(metrics: dict, *, out: str | Path, timings: dict[str, float], nfe_per_step: int) -> dict:
    """Add the stage timings and network calls per step, write ``metrics.json``."""
    metrics["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    metrics["nfe_per_step"] = nfe_per_step
    (Path(out) / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def run_weather(config: RunWeatherConfig, *, out: str | Path, progress: bool = True) -> dict:
    """Run every stage into ``out``; returns the metrics. Finished stages are reused on a re-run."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_config.json").write_text(config.model_dump_json(indent=1))
    timings: dict[str, float] = {}

    def stage(name: str):  # type: ignore[no-untyped-def]
        log.info("[bold]%s[/]", name, extra={"markup": True})
        return time.monotonic()

    t = stage("simulate + ingest the Held–Suarez atmosphere")
    stage_simulate(config, out=out, progress=progress)
    timings["simulate"] = time.monotonic() - t
    for name in ("model", "deterministic"):
        t = stage(f"train the {'flow-matching' if name == 'model' else 'deterministic (mse)'} model")
        stage_train(config, out=out, name=name, progress=progress)
        timings[f"train_{name}"] = time.monotonic() - t

    t = stage("calibrate the sampler noise on validation init times")
    stage_calibrate(config, out=out)
    timings["calibrate"] = time.monotonic() - t
    t = stage("forecast: velocast ensemble")
    forecast = stage_forecast(config, out=out, name="model", progress=progress)
    timings["forecast"] = time.monotonic() - t
    t = stage("forecast: deterministic baseline")
    stage_forecast(config, out=out, name="deterministic", progress=progress)
    timings["forecast_deterministic"] = time.monotonic() - t

    t = stage("perfect-model ensemble")
    stage_perfect_model(config, out=out, progress=progress)
    timings["perfect_model"] = time.monotonic() - t

    t = stage("evaluate")
    metrics = stage_evaluate(config, out=out)
    timings["evaluate"] = time.monotonic() - t
    return finish_metrics(metrics, out=out, timings=timings, nfe_per_step=forecast["nfe_per_step"])
