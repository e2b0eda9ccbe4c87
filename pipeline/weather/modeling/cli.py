"""CLI: ``velocast train weather``, ``forecast weather``, ``evaluate weather`` and ``run weather``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipeline.cli.root import group

INPUT_ERRORS = (FileNotFoundError, KeyError, ValueError)


def _checkpoint_error() -> type[Exception]:
    from models.training.checkpoint import CheckpointError

    return CheckpointError


def parse_noise_scale(text: str | None) -> float | dict[str, float] | None:
    """``--noise-scale``: ``0.6`` → 0.6; ``geopotential=0.45,temperature=0.6`` → a mapping."""
    from pipeline.errors import UserError

    if text is None:
        return None
    try:
        if "=" not in text:
            return float(text)
        pairs = [part.split("=") for part in text.split(",") if part.strip()]
        return {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise UserError(f"--noise-scale expects a number or NAME=VALUE pairs separated by commas, got {text!r}") from None


@group("train").command("weather")
def train_weather_command(
    data: Optional[Path] = typer.Option(None, "--data", help="Training store from `velocast ingest weather`."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (checkpoints, metrics.jsonl); resumes if present."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (WeatherTrainConfig)."),
    objective: Optional[str] = typer.Option(None, "--objective", help="fm (default), another core preset, or mse."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch size."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop cleanly (with a checkpoint) after this."),
    architecture: Optional[str] = typer.Option(None, "--architecture", help="unet (CPU default) or transformer."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda."),
    set_: list[str] = typer.Option([], "--set", help="Override any config field: KEY=VALUE (dotted keys)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Train the conditional flow-matching weather model (or the deterministic baseline with --objective mse).

    Several GPUs or CPU processes: `torchrun --nproc-per-node N -m pipeline train weather ...`.
    """
    from pipeline.config import load_config
    from pipeline.console import console
    from pipeline.errors import user_errors
    from pipeline.weather.modeling.train import WeatherTrainConfig, train_weather

    train_overrides = {"steps": steps, "batch_size": batch_size, "max_minutes": max_minutes, "device": device}
    overrides = {
        "data": str(data) if data else None,
        "objective": objective,
        "train": {k: v for k, v in train_overrides.items() if v is not None} or None,
        "network": {"architecture": architecture} if architecture else None,
    }
    cfg = load_config(WeatherTrainConfig, config, sets=set_, overrides=overrides)
    with user_errors(*INPUT_ERRORS, _checkpoint_error()):
        result = train_weather(cfg, out=out, progress=not no_progress)
    loss = result.metrics.get("loss")
    console.print(f"trained to step {result.step} ({result.stopped})"
                  + (f", loss {loss:.4f}" if loss is not None else "") + f"; checkpoints in {out}/checkpoints")


@group("calibrate").command("weather")
def calibrate_weather_command(
    model: Path = typer.Option(..., "--model", help="Run directory of a flow-matching weather model."),
    data: Path = typer.Option(..., "--data", help="Store with the validation analyses and their truth."),
    init_times: list[str] = typer.Option(..., "--init-times", help="Validation init times: ISO (comma-separated) "
                                         "or START/END/STEP. Never the period you verify on."),
    members: int = typer.Option(10, "--members", help="Ensemble members of each calibration rollout."),
    lead_hours: float = typer.Option(120.0, "--lead-hours", help="Longest lead scored."),
    min_lead_hours: float = typer.Option(24.0, "--min-lead-hours", help="Shortest lead scored."),
    noise_scales: str = typer.Option("0.45,0.6,0.8", "--noise-scales",
                                     help="Noise sizes λ of the CRPS grid, comma-separated."),
    noise_memories: str = typer.Option("0.6", "--noise-memories",
                                       help="Noise memories ρ of the CRPS grid, comma-separated, each in [0, 1)."),
    per_variable: bool = typer.Option(True, "--per-variable/--one-scale",
                                      help="Then λ per variable at each variable's own CRPS minimum, kept if the CRPS improves "
                                           "(one more rollout)."),
    spread_factors: bool = typer.Option(
        True, "--spread-factors/--no-spread-factors",
        help="Then fit the spread factor per channel and lead: the members' deviations from the ensemble mean "
             "scaled so that the validation spread/skill ratio is 1 (post-processing of what the forecast stores; "
             "no extra rollout)."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Sampler (default: the model's own, else heun)."),
    sampler_steps: Optional[int] = typer.Option(None, "--steps", help="Sampler steps per forecast step."),
) -> None:
    """Fit the sampler noise's size λ and step-to-step memory ρ on validation init times: the (λ, ρ) of the
    grid with the lowest CRPS, then λ per variable at each variable's own CRPS minimum, then the spread factor per
    channel and lead. Writes RUN/calibration.json,
    which `velocast forecast weather` then uses by default. Costs len(λ) × len(ρ) rollouts of the validation
    init times, plus one for the per-variable λ."""
    import numpy as np

    from pipeline.console import console
    from pipeline.errors import UserError, user_errors
    from pipeline.weather.modeling.calibrate import CalibrateConfig, calibrate_spread
    from pipeline.weather.modeling.rollout import describe_noise_scale

    def numbers(text: str, option: str) -> list[float]:
        try:
            return [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"{option} expects comma-separated numbers, got {text!r}") from None

    cfg = CalibrateConfig(model=str(model), data=str(data), init_times=init_times, members=members,
                          lead_hours=lead_hours, min_lead_hours=min_lead_hours, per_variable=per_variable,
                          spread_factors=spread_factors,
                          noise_scales=numbers(noise_scales, "--noise-scales"),
                          noise_memories=numbers(noise_memories, "--noise-memories"),
                          sampler=sampler, sampler_steps=sampler_steps)
    with user_errors(*INPUT_ERRORS, _checkpoint_error()):
        record = calibrate_spread(cfg)

    for h in record["history"]:
        console.print(f"  λ {describe_noise_scale(h['noise_scale'])}, ρ {h['noise_memory']:.2f}: CRPS {h['crps']:.5f}, "
                      f"spread/skill {h['ssr']:.3f} (max |log SSR| {h['max_abs_log_ssr']:.3f})", highlight=False)
    by_lead = np.concatenate([np.asarray(v) for v in record["validation_ssr_by_lead"].values()])
    console.print(f"noise scale λ {describe_noise_scale(record['noise_scale'])}, memory ρ {record['noise_memory']:.2f} (validation "
                  f"spread/skill {by_lead.min():.2f} … {by_lead.max():.2f} over variables and leads) "
                  f"-> {model}/calibration.json", highlight=False)
    factors = record.get("spread_factors")
    if factors:
        by_lead = np.concatenate([np.asarray(v) for v in factors["validation_ssr_by_lead"].values()])
        alphas = np.concatenate([np.asarray(v) for v in factors["channels"].values()])
        console.print(f"spread factors {alphas.min():.2f} … {alphas.max():.2f}: validation CRPS {record['validation_crps']:.5f} "
                      f"-> {factors['validation_crps']:.5f}, spread/skill {by_lead.min():.2f} … {by_lead.max():.2f}",
                      highlight=False)


@group("forecast").command("weather")
def forecast_weather_command(
    model: Path = typer.Option(..., "--model", help="Run directory (newest checkpoint) or checkpoint directory."),
    data: Path = typer.Option(..., "--data", help="Store holding the analyses at and before each init time."),
    init_times: list[str] = typer.Option(..., "--init-times", help="ISO times (comma-separated) or START/END/STEP."),
    out: Path = typer.Option(..., "--out", "-o", help="Forecast store (Icechunk); existing cycles are kept."),
    members: int = typer.Option(10, "--members", help="Ensemble members (1 for a deterministic model)."),
    lead: str = typer.Option("10d", "--lead", help="Forecast length, e.g. 5d or 120h."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="euler, heun, midpoint, dpmpp_2s or churn (default: the model's own, e.g. a distilled student's, else heun)."),
    sampler_steps: Optional[int] = typer.Option(None, "--steps", help="Sampler steps per forecast step (default: the model's own, else 8)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Classifier-free guidance scale."),
    noise_scale: Optional[str] = typer.Option(
        None, "--noise-scale",
        help="Size λ of the sampler noise: one number, or VARIABLE=λ pairs such as "
             "geopotential=0.45,temperature=0.6 (a channel name like temperature_850 also works; default: the "
             "run's calibration.json from `velocast calibrate weather`, else 1)."),
    noise_memory: Optional[float] = typer.Option(
        None, "--noise-memory",
        help="Correlate each member's sampler noise from one step to the next by this factor in [0, 1) "
             "(AR(1); default: the run's calibration.json, else 0 = fresh noise every step)."),
    raw_spread: bool = typer.Option(
        False, "--raw-spread",
        help="Store the raw rollout: skip the calibrated spread factors (the members' deviations from the ensemble "
             "mean scaled per lead and channel, from calibration.json; applied only with the calibrated λ and ρ)."),
    seed: int = typer.Option(0, "--seed", help="Noise seed."),
    batch_size: int = typer.Option(64, "--batch-size", help="Samples per network batch."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Roll a trained weather model out as an ensemble; one Icechunk commit per init time."""
    from pipeline.config import load_config
    from pipeline.console import console
    from pipeline.errors import user_errors
    from pipeline.weather.modeling.generate import ForecastConfig, forecast_weather

    cfg = load_config(ForecastConfig, None, overrides=dict(
        model=str(model), data=str(data), init_times=init_times, members=members, lead=lead, sampler=sampler,
        sampler_steps=sampler_steps, guidance=guidance, noise_scale=parse_noise_scale(noise_scale),
        noise_memory=noise_memory, spread_factors=not raw_spread, seed=seed,
        batch_size=batch_size, device=device))
    with user_errors(*INPUT_ERRORS, _checkpoint_error()):
        summary = forecast_weather(cfg, out=out, progress=not no_progress)
    console.print(f"{len(summary.written)} cycles written, {len(summary.skipped)} already present; "
                  f"{summary.members} members x {summary.lead_steps} steps, {summary.nfe_per_step} network calls "
                  f"per step, {summary.seconds:.1f} s -> {out}")


@group("evaluate").command("weather")
def evaluate_weather_command(
    forecast: Path = typer.Option(..., "--forecast", help="velocast forecast store."),
    truth: Path = typer.Option(..., "--truth", help="Truth / analysis store covering the valid times."),
    out: Path = typer.Option(..., "--out", "-o", help="Report directory (metrics.json, report.md, PNG plots)."),
    deterministic: Optional[Path] = typer.Option(None, "--deterministic", help="Forecast store of the mse model."),
    perfect_model: Optional[Path] = typer.Option(None, "--perfect-model", help="Perfect-model ensemble store."),
    variables: Optional[str] = typer.Option(None, "--variables", help="Comma-separated variables to score."),
) -> None:
    """Score velocast and the baselines (fair CRPS, debiased RMSE, spread/skill, rank histograms, ACC)."""
    from pipeline.config import load_config
    from pipeline.console import console
    from pipeline.errors import user_errors
    from pipeline.weather.modeling.evaluate import EvaluateConfig, evaluate_weather

    cfg = load_config(EvaluateConfig, None, overrides=dict(
        forecast=str(forecast), truth=str(truth), deterministic=str(deterministic) if deterministic else None,
        perfect_model=str(perfect_model) if perfect_model else None,
        variables=[v.strip() for v in variables.split(",")] if variables else None))
    with user_errors(*INPUT_ERRORS):
        metrics = evaluate_weather(cfg, out=out)
    console.print(headline_table(metrics))
    console.print(f"report: {out / 'report.md'}")


def headline_table(metrics: dict, *, metric: str = "crps"):  # type: ignore[no-untyped-def]
    """A rich table of one metric for the headline channels, systems as rows, leads as columns."""
    from rich.table import Table

    leads = metrics["lead_hours"]
    picks = [i for i, h in enumerate(leads) if h in (6, 12, 24, 72, 120, 240)] or list(range(len(leads)))
    channels = [c for c in ("geopotential_500", "temperature_850") if c in metrics["variables"]]
    channels = channels or metrics["variables"][:2]
    table = Table(title=f"{metric.upper()} by lead (hours)")
    table.add_column("system")
    for channel in channels:
        for i in picks:
            table.add_column(f"{channel} {leads[i]}h", justify="right")
    for system, scores in metrics["scores"].items():
        cells = []
        for channel in channels:
            values = scores.get(metric, {}).get(channel) or [None] * len(leads)
            cells += ["–" if values[i] is None else f"{values[i]:.4g}" for i in picks]
        table.add_row(system, *cells)
    return table


@group("run").command("weather")
def run_weather_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (stores, models, report)."),
    quick: bool = typer.Option(False, "--quick", help="The same path at toy sizes (about 3 minutes)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (RunWeatherConfig)."),
    set_: list[str] = typer.Option([], "--set", help="Override any config field: KEY=VALUE (dotted keys)."),
) -> None:
    """simulate -> ingest -> train -> forecast -> evaluate on the embedded Held–Suarez atmosphere.

    Runs the `weather-pipeline` Prefect flow (each stage a cached task; a temporary Prefect server is
    started when PREFECT_API_URL is not set).
    """
    from pipeline.config import deep_merge, load_config, parse_set_overrides
    from pipeline.console import console
    from pipeline.errors import user_errors
    from pipeline.weather.run import RunWeatherConfig

    if quick:
        base = RunWeatherConfig.quick().model_dump(mode="json")
        cfg = RunWeatherConfig.model_validate(deep_merge(base, parse_set_overrides(set_)))
    else:
        cfg = load_config(RunWeatherConfig, config, sets=set_)
    import json

    from flows.weather import weather_pipeline  # each stage runs as a Prefect task (see flows/weather.py)

    with user_errors(*INPUT_ERRORS, _checkpoint_error()):
        metrics = json.loads(Path(weather_pipeline(str(out), config=cfg.model_dump(mode="json"))).read_text())
    console.print(headline_table(metrics))
    console.print(f"report: {out / 'report.md'}")
