"""CLI: ``velocast train protein``, ``sample protein``, ``forecast protein`` and ``run protein``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipeline.cli.root import group

FORMATS_HELP = "Export formats, comma-separated (pdb, xtc, dcd, h5); empty for none."


def _input_errors() -> tuple[type[Exception], ...]:
    from models.training import CheckpointError

    return FileNotFoundError, KeyError, ValueError, CheckpointError


def _formats(text: str) -> tuple[str, ...]:
    return tuple(f.strip() for f in text.split(",") if f.strip())


@group("train").command("protein")
def train_protein_command(
    data: Optional[Path] = typer.Option(None, "--data", help="Structure store (ingest protein / simulate peptide)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (checkpoints, metrics.jsonl); resumes if present."),
    task: Optional[str] = typer.Option(None, "--task", help="ensemble (conformations) or forecast (x(t+τ) | x(t))."),
    lag_ps: Optional[float] = typer.Option(None, "--lag-ps", help="Forecast lag τ in ps."),
    representation: Optional[str] = typer.Option(
        None, "--representation",
        help="internal (bond lengths, angles, dihedrals; default: valid bonds by construction) or cartesian."),
    bonds: Optional[str] = typer.Option(
        None, "--bonds",
        help="internal only: fixed (default: each bond held at its mean training length; angles and dihedrals "
             "learned) or learned (bond lengths are features too, with their thermal spread)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop cleanly after this many minutes."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (ProteinTrainConfig)."),
    set_: list[str] = typer.Option([], "--set", help="Override any config field: KEY=VALUE (dotted keys)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Train a flow-matching model of conformations (ensemble) or of time-lagged dynamics (forecast)."""
    from pipeline.config import load_config
    from pipeline.console import console
    from pipeline.errors import user_errors
    from pipeline.protein.modeling.train import ProteinTrainConfig, train_protein

    train_overrides = {k: v for k, v in {"steps": steps, "max_minutes": max_minutes}.items() if v is not None}
    cfg = load_config(ProteinTrainConfig, config, sets=set_, overrides={
        "data": str(data) if data else None, "task": task, "lag_ps": lag_ps,
        "representation": representation, "bonds": bonds, "train": train_overrides or None})
    with user_errors(*_input_errors()):
        result = train_protein(cfg, out=out, progress=not no_progress)
    console.print(f"trained the {cfg.task} model to step {result.step} ({result.stopped}); checkpoints in {out}/checkpoints")


@group("sample").command("protein")
def sample_protein_command(
    model: Path = typer.Option(..., "--model", help="Ensemble model run directory or checkpoint."),
    n: int = typer.Option(10000, "--n", min=1, help="Number of conformations."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory: samples.zarr and exports/."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="euler, heun, midpoint, dpmpp_2s or churn (default: the model's own, else heun)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Sampler steps (default: the model's own, else 16)."),
    seed: int = typer.Option(0, "--seed", help="Noise seed."),
    formats: str = typer.Option("pdb,xtc,dcd", "--formats", help=FORMATS_HELP),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Draw independent conformations; write a structure store plus PDB/XTC/DCD for VMD and PyMOL."""
    from pipeline.console import console
    from pipeline.errors import user_errors
    from pipeline.protein.modeling.commands import sample_protein
    from pipeline.protein.store import open_structure_store

    with user_errors(*_input_errors()):
        store = sample_protein(model=model, n=n, out=out, sampler=sampler, steps=steps, seed=seed,
                               formats=_formats(formats), progress=not no_progress)
    rate = open_structure_store(store).attrs.get("samples_per_cpu_second", 0.0)
    console.print(f"wrote {n} samples to {store} ({rate:,.0f} samples per CPU-second); exports in {out}/exports")


@group("forecast").command("protein")
def forecast_protein_command(
    model: Path = typer.Option(..., "--model", help="Forecast model run directory or checkpoint."),
    start: str = typer.Option(..., "--start", help="Start structure: STORE.zarr[:FRAME] or a file mdtraj reads."),
    steps: int = typer.Option(..., "--steps", min=1, help="Number of lags τ to roll out."),
    members: int = typer.Option(8, "--members", min=1, help="Independent trajectories."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory: trajectories.zarr and exports/."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="euler, heun, midpoint, dpmpp_2s or churn (default: the model's own, else heun)."),
    sampler_steps: Optional[int] = typer.Option(None, "--sampler-steps", min=1, help="Sampler steps per lag (default: the model's own, else 16)."),
    seed: int = typer.Option(0, "--seed", help="Noise seed."),
    formats: str = typer.Option("pdb,xtc,dcd", "--formats", help=FORMATS_HELP),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Roll a time-lagged model out into trajectories (member, frame, atom, xyz) plus PDB/XTC/DCD."""
    from pipeline.console import console
    from pipeline.errors import user_errors
    from pipeline.protein.modeling.commands import forecast_protein

    with user_errors(*_input_errors()):
        store = forecast_protein(model=model, start=start, steps=steps, members=members, out=out, sampler=sampler,
                                 sampler_steps=sampler_steps, seed=seed, formats=_formats(formats),
                                 progress=not no_progress)
    console.print(f"wrote {members} trajectories of {steps} lags to {store}; exports in {out}/exports")


@group("run").command("protein")
def run_protein_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (MD stores, models, samples, report)."),
    quick: bool = typer.Option(False, "--quick", help="The same path at toy sizes (about 3 minutes)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (RunProteinConfig)."),
    set_: list[str] = typer.Option([], "--set", help="Override any config field: KEY=VALUE (dotted keys)."),
) -> None:
    """simulate -> ingest -> train -> sample -> evaluate on alanine dipeptide (with an independent MD reference).

    Runs the `protein-pipeline` Prefect flow (each stage a cached task; a temporary Prefect server is
    started when PREFECT_API_URL is not set).
    """
    import json

    from flows.protein import protein_pipeline
    from pipeline.config import deep_merge, load_config, parse_set_overrides
    from pipeline.console import console
    from pipeline.errors import user_errors
    from pipeline.protein.run import RunProteinConfig

    if quick:
        cfg = RunProteinConfig.model_validate(deep_merge(RunProteinConfig.quick().model_dump(mode="json"),
                                                         parse_set_overrides(set_)))
    else:
        cfg = load_config(RunProteinConfig, config, sets=set_)
    with user_errors(*_input_errors()):
        metrics = json.loads(Path(protein_pipeline(str(out), config=cfg.model_dump(mode="json"))).read_text())
    basins = metrics.get("basins", {})
    console.print(f"rama_js {metrics.get('rama_js'):.3f} (training data: {metrics.get('rama_js_training'):.3f}); "
                  f"alpha_R samples {basins.get('samples', {}).get('alpha_r', float('nan')):.3f}, "
                  f"training {basins.get('training', {}).get('alpha_r', float('nan')):.3f}, "
                  f"reference {basins.get('reference', {}).get('alpha_r', float('nan')):.3f}; "
                  f"valid {metrics.get('valid_fraction'):.3f}; report: {out / 'report.md'}")
