"""``velocast run weather``: the whole weather pipeline on the embedded Held–Suarez atmosphere, declared once.

simulate (+ ingest) → train the flow-matching model and the deterministic (MSE) baseline → calibrate the
model's sampler noise on validation init times → forecast both from the test init times → perfect-model
ensemble from the same init times → evaluate. :data:`RUN` lists these stages with what each reads,
writes and keys its cache on; every runner (in-process, Prefect) executes that list.

Periods (simulation time starts 2000-01-01T00 after the spin-up): training, then ``validation_days``
of validation, then the test init times every ``init_spacing_hours``; the record extends ``lead_days``
past the last init time so every lead has a truth.
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import Field

from models.training.loop import TrainConfig
from pipeline.config import StrictModel, set_fields
from pipeline.console import shown_path
from pipeline.runs import Layout, RunSpec, RunSummary, Stage, StageContext, artefact
from pipeline.weather.modeling.model import NetworkConfig
from pipeline.weather.modeling.rollout import NoiseScale
from pipeline.weather.modeling.train import ValidationConfig


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
    perfect_model_perturbation: Literal["state-difference", "white-noise", "unobserved"] = Field(
        "state-difference", description="how the perfect-model members differ at t = 0: state-difference (0.5 K "
        "balanced analysis errors) or unobserved (the stored channels exact, the rest a climatological anomaly: "
        "the honest ceiling; see `velocast simulate atmosphere --perturbation`)")
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
                                     log_every=25, checkpoint_every=500, validate_every=1000, max_minutes=6.75,
                                     amp="native")
    deterministic_train: TrainConfig = TrainConfig(steps=1500, batch_size=16, lr=5e-4, warmup_steps=100,
                                                   ema_decay=0.995, log_every=25, checkpoint_every=500,
                                                   validate_every=0, max_minutes=2.0, amp="native")
    validation: ValidationConfig = ValidationConfig()

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


def quick_preset() -> dict[str, Any]:
    """``--quick``: the same path at toy sizes (≤ 3 minutes): short spin-up, tiny network, few steps. The
    fields it sets are complete (``--config``/``--set`` then change single values of them)."""
    quick = RunWeatherConfig(
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
    return set_fields(quick)


class WeatherRunLayout(Layout):
    """The artefacts of ``velocast run weather --out DIR``."""

    atmosphere = artefact("atmosphere.zarr", "zarr", "the simulated analyses: training, validation and test periods")
    model = artefact("model", "run", "the flow-matching model's run: checkpoints, metrics.jsonl, train_config.json")
    calibration = artefact("model/calibration.json", "file", "the sampler noise λ, ρ and spread factors fitted on "
                                                            "validation init times")
    deterministic = artefact("deterministic", "run", "the deterministic (mse) baseline's run")
    forecast = artefact("forecast.icechunk", "icechunk", "velocast's ensemble forecasts of the test init times")
    deterministic_forecast = artefact("deterministic_forecast.icechunk", "icechunk",
                                      "the deterministic baseline's forecasts of the same init times")
    perfect_model = artefact("perfect_model.zarr", "zarr", "the perfect-model ensemble from the same init times")
    metrics = artefact("metrics.json", "file", "every system's scores by channel and lead")
    report = artefact("report.md", "file", "the verification report; its plots lie beside it")


# -- stages: (config, layout, context) -> a small JSON result ---------------------------------------------


def simulate(config: RunWeatherConfig, layout: WeatherRunLayout, context: StageContext) -> dict:
    """Simulate + ingest the Held–Suarez atmosphere into the training store."""
    from pipeline.weather.simulate.api import simulate_training_store

    if not layout.atmosphere.exists():
        simulate_training_store(out=layout.atmosphere, days=config.periods()[3], seed=config.seed,
                                spinup_days=config.spinup_days, progress=context.progress)
    return {"store": str(layout.atmosphere)}


def _train(config: RunWeatherConfig, layout: WeatherRunLayout, context: StageContext, *, objective: str,
           train: TrainConfig, run: str) -> dict:
    from pipeline.weather.modeling.train import WeatherTrainConfig, train_weather

    train_end, valid_end, _, _ = config.periods()
    spec = WeatherTrainConfig(data=str(layout.atmosphere), network=config.network,
                              train=train.model_copy(update={"objective": objective}), train_end=str(train_end),
                              validation_end=str(valid_end), validation=config.validation)
    result = train_weather(spec, out=layout.path(run), progress=context.progress,
                           on_step=lambda step: context.report(step, train.steps))
    return {"run": str(layout.path(run)), "step": result.step, "stopped": result.stopped}


def train_model(config: RunWeatherConfig, layout: WeatherRunLayout, context: StageContext) -> dict:
    """Train the flow-matching model."""
    return _train(config, layout, context, objective="fm", train=config.train, run="model")


def train_deterministic(config: RunWeatherConfig, layout: WeatherRunLayout, context: StageContext) -> dict:
    """Train the deterministic (mse) baseline."""
    return _train(config, layout, context, objective="mse", train=config.deterministic_train, run="deterministic")


def calibrate(config: RunWeatherConfig, layout: WeatherRunLayout, context: StageContext) -> dict:
    """Fit the model's sampler noise λ (grid at ρ = ``noise_memory``, optionally per variable) and the spread
    factors on the validation init times into ``model/calibration.json`` (nothing when
    ``calibration_init_times`` is 0)."""
    from pipeline.weather.modeling.calibrate import CalibrateConfig, calibrate_spread

    if config.calibration_init_times == 0:
        return {"calibrated": False}
    record = calibrate_spread(CalibrateConfig(
        model=str(layout.model), data=str(layout.atmosphere),
        init_times=[t.isoformat() for t in config.calibration_inits()], members=config.calibration_members,
        lead_hours=config.lead_days * 24, min_lead_hours=min(24.0, config.lead_days * 24),
        sampler=config.sampler, sampler_steps=config.sampler_steps, noise_scales=config.calibration_noise_scales,
        noise_memories=[config.noise_memory], per_variable=config.calibration_per_variable,
        spread_factors=config.spread_factors, seed=config.seed), progress=context.progress)
    return {"calibrated": True, "noise_scale": record["noise_scale"], "noise_memory": record["noise_memory"],
            "validation_crps": record["validation_crps"]}


def _forecast(config: RunWeatherConfig, layout: WeatherRunLayout, context: StageContext, *, run: str,
              store: str, ensemble: bool) -> dict:
    from pipeline.weather.modeling.generate import ForecastConfig, forecast_weather

    common = dict(model=str(layout.path(run)), data=str(layout.atmosphere),
                  init_times=[t.isoformat() for t in config.periods()[2]], lead=f"{config.lead_days * 24:g}h",
                  seed=config.seed)
    if ensemble:
        calibrated = config.calibration_init_times > 0  # then None: the run's calibration.json (λ, ρ)
        spec = ForecastConfig(**common, members=config.members, sampler=config.sampler,
                              sampler_steps=config.sampler_steps,
                              noise_scale=None if calibrated else config.noise_scale,
                              noise_memory=None if calibrated else config.noise_memory,
                              spread_factors=config.spread_factors)
    else:
        spec = ForecastConfig(**common)
    summary = forecast_weather(spec, out=layout.path(store), progress=context.progress)
    return {"store": str(layout.path(store)), "written": len(summary.written), "skipped": len(summary.skipped),
            "nfe_per_step": summary.nfe_per_step}


def forecast_model(config: RunWeatherConfig, layout: WeatherRunLayout, context: StageContext) -> dict:
    """Forecast the test init times with the flow-matching model (its calibrated noise)."""
    return _forecast(config, layout, context, run="model", store="forecast", ensemble=True)


def forecast_deterministic(config: RunWeatherConfig, layout: WeatherRunLayout, context: StageContext) -> dict:
    """Forecast the test init times with the deterministic baseline."""
    return _forecast(config, layout, context, run="deterministic", store="deterministic_forecast", ensemble=False)


def perfect_model(config: RunWeatherConfig, layout: WeatherRunLayout, context: StageContext) -> dict:
    """The perfect-model ensemble of the true simulator from the same init times."""
    from pipeline.weather.simulate.ensemble import perfect_model_ensemble, write_forecast_zarr

    if not layout.perfect_model.exists():
        ensemble = perfect_model_ensemble(truth=layout.atmosphere, init_times=config.periods()[2],
                                          members=config.perfect_model_members,
                                          lead=pd.Timedelta(days=config.lead_days), seed=config.seed,
                                          perturbation=config.perfect_model_perturbation, progress=context.progress)
        write_forecast_zarr(ensemble, layout.perfect_model)
    return {"store": str(layout.perfect_model)}


def evaluate(config: RunWeatherConfig, layout: WeatherRunLayout, context: StageContext) -> dict:
    """Score every system; write ``metrics.json``, ``report.md`` and the plots."""
    from pipeline.weather.modeling.evaluate import EvaluateConfig, evaluate_weather

    metrics = evaluate_weather(
        EvaluateConfig(forecast=str(layout.forecast), truth=str(layout.atmosphere),
                       deterministic=str(layout.deterministic_forecast), perfect_model=str(layout.perfect_model),
                       seed=config.seed),
        out=layout.root,
    )
    return {"metrics": str(layout.metrics), "systems": sorted(metrics["scores"])}


PERIODS = ("seed", "train_days", "validation_days", "init_times", "init_spacing_hours", "lead_days")
"""The fields that fix the simulated record and its periods (see :meth:`RunWeatherConfig.periods`)."""

STAGES: tuple[Stage[RunWeatherConfig, WeatherRunLayout], ...] = (
    Stage("simulate", simulate, "simulate and ingest the Held–Suarez atmosphere", outputs=("atmosphere",),
          config=(*PERIODS, "spinup_days")),
    Stage("train-model", train_model, "train the flow-matching model", inputs=("atmosphere",), outputs=("model",),
          config=(*PERIODS, "network", "train", "validation")),
    Stage("train-deterministic", train_deterministic, "train the deterministic (mse) baseline",
          inputs=("atmosphere",), outputs=("deterministic",),
          config=(*PERIODS, "network", "deterministic_train", "validation")),
    Stage("calibrate", calibrate, "fit the sampler noise and spread factors on validation init times",
          inputs=("atmosphere", "model"), outputs=("calibration",),
          config=(*PERIODS, "sampler", "sampler_steps", "noise_memory", "calibration_init_times",
                  "calibration_members", "calibration_noise_scales", "calibration_per_variable", "spread_factors")),
    Stage("forecast-model", forecast_model, "forecast the test init times: velocast ensemble",
          inputs=("atmosphere", "model", "calibration"), outputs=("forecast",), retries=2,
          config=(*PERIODS, "members", "sampler", "sampler_steps", "noise_scale", "noise_memory",
                  "calibration_init_times", "spread_factors")),
    Stage("forecast-deterministic", forecast_deterministic, "forecast the test init times: deterministic baseline",
          inputs=("atmosphere", "deterministic"), outputs=("deterministic_forecast",), retries=2, config=PERIODS),
    Stage("perfect-model", perfect_model, "run the perfect-model ensemble from the test init times",
          inputs=("atmosphere",), outputs=("perfect_model",),
          config=(*PERIODS, "perfect_model_members", "perfect_model_perturbation")),
    Stage("evaluate", evaluate, "score every system and write the report",
          inputs=("atmosphere", "forecast", "deterministic_forecast", "perfect_model"), outputs=("metrics", "report"),
          config=("seed",)),
)


def summary(layout: WeatherRunLayout) -> RunSummary:
    """The CRPS of the headline channels (Z500, T850) at a few leads for every system, and the report."""
    import json

    from pipeline.weather.report import headline_rows

    metrics = json.loads(layout.metrics.read_text())
    plots = sorted(layout.root.glob("*.png"), key=lambda p: (p.name != "crps.png", p.name))
    return RunSummary(title="weather: fair CRPS by lead (lower is better)", headline=headline_rows(metrics),
                      report=layout.report, html=layout.report.with_suffix(".html"), plots=plots,
                      next_commands=[
                          (f"velocast query point {shown_path(layout.forecast)} -V temperature -l 850 --lat 52.5 "
                           f"--lon 13.4 -q 0.1,0.5,0.9   # one point's ensemble plume"),
                          f"velocast serve {shown_path(layout.forecast)}   # the map page at http://127.0.0.1:8000/",
                      ],
                      lines=[f"{metrics['n_init_times']} test init times, {metrics['members'].get('velocast')} "
                             f"members, {metrics.get('nfe_per_step')} network calls per forecast step"])


RUN = RunSpec(domain="weather", description="the Held–Suarez atmosphere: simulate → train → calibrate → forecast → "
                                            "evaluate", config=RunWeatherConfig, layout=WeatherRunLayout,
              stages=STAGES, summary=summary, presets={"quick": quick_preset})
