"""CLI: ``velocast distill protein`` (reflow distillation of a trained protein model; see
:mod:`pipeline.protein.modeling.distill`)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.root import group


@group("distill").command("protein")
def distill_protein_command(
    model: Path = typer.Option(..., "--model", help="Teacher run directory (newest checkpoint) or checkpoint directory."),
    out: Path = typer.Option(..., "--out", "-o", help="New run directory for the student (must not exist or be empty)."),
    steps: int | None = typer.Option(None, "--steps", help="Euler steps (network calls per sample) the student is made for."),
    data: Path | None = typer.Option(None, "--data", help="Structure store for a forecast model's conditions (default: the teacher's)."),
    pairs: int | None = typer.Option(None, "--pairs", help="Teacher (noise, sample) pairs to generate."),
    train_steps: int | None = typer.Option(None, "--train-steps", help="Student optimisation steps."),
    teacher_sampler: str | None = typer.Option(None, "--teacher-sampler", help="Teacher sampler: euler, heun, midpoint, dpmpp_2s or churn."),
    teacher_steps: int | None = typer.Option(None, "--teacher-steps", help="Teacher sampler steps per pair."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (DistillProteinConfig)."),
    set_: list[str] = typer.Option([], "--set", help="Override any config field: KEY=VALUE (e.g. reflow.lr=1e-4)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bars."),
) -> None:
    """Distil a protein model into a few-step student (reflow)."""
    from models.training import CheckpointError
    from pipeline.config import load_config
    from pipeline.console import console
    from pipeline.errors import user_errors
    from pipeline.protein.modeling.distill import DistillProteinConfig, distill_protein

    reflow = {"student_steps": steps, "pairs": pairs, "steps": train_steps, "teacher_sampler": teacher_sampler,
              "teacher_steps": teacher_steps}
    cfg = load_config(DistillProteinConfig, config, sets=set_, overrides={
        "model": str(model), "data": str(data) if data else None,
        "reflow": {k: v for k, v in reflow.items() if v is not None} or None})
    with user_errors(FileNotFoundError, KeyError, ValueError, CheckpointError):
        summary = distill_protein(cfg, out=out, progress=not no_progress)
    k = summary["student_steps"]
    console.print(f"distilled the {summary['task']} model {model} -> {out}: {summary['pairs']} teacher pairs at "
                  f"{summary['teacher_nfe']} calls each, {summary['steps']} student steps; sample with "
                  f"--sampler euler --steps {k} ({k} network calls)")
