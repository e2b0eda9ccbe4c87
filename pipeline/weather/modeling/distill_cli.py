"""CLI: ``velocast distill weather`` (reflow distillation of a trained weather model)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.root import group


@group("distill").command("weather")
def distill_weather_command(
    model: Path = typer.Option(..., "--model", help="Teacher run directory (newest checkpoint) or checkpoint directory."),
    out: Path = typer.Option(..., "--out", "-o", help="New run directory for the student (must not exist or be empty)."),
    steps: int | None = typer.Option(None, "--steps", help="Euler steps (= network calls per forecast step) the student is made for."),
    data: Path | None = typer.Option(None, "--data", help="Training store (default: the teacher's)."),
    pairs: int | None = typer.Option(None, "--pairs", help="Teacher (noise, sample) pairs to generate."),
    train_steps: int | None = typer.Option(None, "--train-steps", help="Student optimisation steps."),
    teacher_sampler: str | None = typer.Option(None, "--teacher-sampler", help="Teacher sampler: euler, heun, midpoint, dpmpp_2s or churn."),
    teacher_steps: int | None = typer.Option(None, "--teacher-steps", help="Teacher sampler steps per pair."),
    noise_scale: str | None = typer.Option(
        None, "--noise-scale", help="Teacher's sampler noise size λ: a number or VARIABLE=λ pairs (default: the "
                                    "teacher's calibration.json, else 1); the student inherits it."),
    noise_memory: float | None = typer.Option(None, "--noise-memory",
                                              help="Noise memory ρ the student's forecasts use (default: the teacher's)."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", help="Stop the student's training after this (still saves)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (DistillWeatherConfig)."),
    set_: list[str] = typer.Option([], "--set", help="Override any config field: KEY=VALUE (dotted keys, e.g. reflow.lr=1e-4)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bars."),
) -> None:
    """Distil a weather model into a few-step student (reflow); forecast with it via `velocast forecast weather --model OUT`."""
    from models.training.checkpoint import CheckpointError
    from pipeline.config import load_config
    from pipeline.console import console
    from pipeline.errors import user_errors
    from pipeline.weather.modeling.cli import parse_noise_scale
    from pipeline.weather.modeling.distill import DistillWeatherConfig, distill_weather
    from pipeline.weather.modeling.rollout import describe_noise_scale

    reflow = {"student_steps": steps, "pairs": pairs, "steps": train_steps, "teacher_sampler": teacher_sampler,
              "teacher_steps": teacher_steps, "max_minutes": max_minutes}
    overrides = {"model": str(model), "data": str(data) if data else None,
                 "noise_scale": parse_noise_scale(noise_scale), "noise_memory": noise_memory,
                 "reflow": {k: v for k, v in reflow.items() if v is not None} or None}
    cfg = load_config(DistillWeatherConfig, config, sets=set_, overrides=overrides)
    with user_errors(FileNotFoundError, KeyError, ValueError, CheckpointError):
        summary = distill_weather(cfg, out=out, progress=not no_progress)
    loss = summary.get("loss")
    console.print(f"distilled {model} -> {out}: {summary['pairs']} teacher pairs at {summary['teacher_nfe']} calls each, "
                  f"{summary['steps']} student steps" + (f", loss {loss:.4f}" if loss is not None else "")
                  + f"; forecasts default to euler x{summary['student_steps']} "
                  f"({summary['student_steps']} network calls per step) from the teacher's noise "
                  f"λ {describe_noise_scale(summary['noise_scale'])}, ρ {summary['noise_memory']}", highlight=False)
