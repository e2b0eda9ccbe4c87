"""CLI: ``velocast ingest weather``, ``velocast simulate atmosphere`` and the operations ``velocast run cycle`` /
``run verify`` (the verbs: :mod:`pipeline.weather.domain`)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from pipeline.cli.root import group

ANALYSIS_HELP = "Analysis store (Zarr) the cycles start from and verify against."
STORE_HELP = "Forecast store (Icechunk) the cycles are committed to."
REGISTRY_HELP = "Model registry directory (default $VELOCAST_REGISTRY or ./models)."
RUNNER_HELP = ("auto (the Prefect flow when an API answers or a temporary server starts, else in-process), local "
               "or prefect.")

# numexpr (imported by pandas) logs "NumExpr defaulting to N threads" at INFO: not for users' eyes.
logging.getLogger("numexpr").setLevel(logging.WARNING)


@group("ingest").command("weather")
def ingest_weather(
    recipe: Path = typer.Argument(..., help="Recipe YAML (see pipeline/weather/recipes/ for examples)."),
    out: Path = typer.Option(..., "--out", "-o", help="Training store to write (Zarr v3 directory)."),
    dask_address: str | None = typer.Option(
        None, "--dask-address", help="Run on an existing Dask scheduler (e.g. tcp://host:8786)."
    ),
    allow_gaps: bool = typer.Option(False, "--allow-gaps", help="Ingest even when times are missing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store at --out."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe field: KEY=VALUE (dotted keys)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Ingest gridded data (Zarr, NetCDF, GRIB, builtin:) into a validated Zarr v3 training store."""
    from pipeline.console import console
    from pipeline.weather.ingest import ingest
    from pipeline.weather.recipe import load_recipe
    from pipeline.weather.store import describe_store

    rec = load_recipe(recipe, sets=set_)
    path = ingest(
        rec, out, allow_gaps=allow_gaps, dask_address=dask_address, progress=not no_progress,
        overwrite=overwrite, recipe_path=str(recipe),
    )
    console.print(describe_store(path), highlight=False)


@group("simulate").command("atmosphere")
def simulate_atmosphere(
    out: Path = typer.Option(..., "--out", "-o", help="Store to write (training store, or forecast store with --perturb-from)."),
    days: float = typer.Option(365.0, "--days", help="Simulated days kept after the spin-up."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial-state perturbation."),
    spinup_days: float = typer.Option(300.0, "--spinup-days", help="Discarded spin-up in days (≥ 200 for a climate)."),
    levels: str = typer.Option("250,500,850", "--levels", help="Output pressure levels in hPa, comma-separated."),
    perturb_from: Path | None = typer.Option(
        None, "--perturb-from", help="Truth store (a simulation): write a perfect-model ensemble instead."
    ),
    init_times: str | None = typer.Option(
        None, "--init-times", help="Init times for --perturb-from: comma-separated ISO times, or START/END/STEP."
    ),
    members: int = typer.Option(10, "--members", help="Ensemble members (with --perturb-from)."),
    lead: str = typer.Option("10d", "--lead", help="Forecast length (with --perturb-from), e.g. 10d, 72h."),
    amplitude: float | None = typer.Option(
        None, "--amplitude", help="Perturbation size: its temperature part in K rms (default 0.5; not for unobserved)."
    ),
    perturbation: str = typer.Option(
        "state-difference", "--perturbation",
        help="state-difference (balanced, default), white-noise (T only) or unobserved (the stored channels exact, "
             "the rest a climatological anomaly: the honest predictability ceiling).",
    ),
    compile: bool | None = typer.Option(
        None, "--compile/--no-compile", help="torch.compile the step (default: on for long runs)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store at --out."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Simulate the embedded Held–Suarez atmosphere (cached), or a perfect-model ensemble from it."""
    from pipeline.console import console
    from pipeline.errors import UserError

    if perturb_from is not None:
        from pipeline.weather.simulate.ensemble import write_perfect_model_ensemble

        if not init_times:
            raise UserError("--perturb-from needs --init-times")
        times = parse_init_times(init_times)
        ds = write_perfect_model_ensemble(
            out=out, overwrite=overwrite, truth=perturb_from, init_times=times, members=members,
            lead=_timedelta(lead), amplitude_k=amplitude, perturbation=_perturbation(perturbation),
            compile=compile, progress=not no_progress,
        )
        console.print(
            f"wrote {out}: perfect-model ensemble, {ds.sizes['init_time']} init times × "
            f"{ds.sizes['lead_time']} lead times × {ds.sizes['member']} members "
            f"({', '.join(map(str, ds.data_vars))})",
            highlight=False,
        )
        return

    from pipeline.weather.simulate.api import simulate_training_store

    if out.exists() and not overwrite:
        raise UserError("output already exists; choose another path or pass --overwrite", path=out)

    try:
        level_list = [int(v) for v in levels.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--levels expects comma-separated integers, got {levels!r}") from None
    path, info = simulate_training_store(
        out=out, days=days, seed=seed, spinup_days=spinup_days, levels=level_list, compile=compile,
        progress=not no_progress, overwrite=overwrite,
    )
    from pipeline.weather.store import describe_store

    console.print(info, highlight=False)
    console.print(describe_store(path), highlight=False)


def _perturbation(text: str) -> str:
    from pipeline.errors import UserError

    if text not in ("state-difference", "white-noise", "unobserved"):
        raise UserError(f"--perturbation must be state-difference, white-noise or unobserved, got {text!r}")
    return text


def _timedelta(text: str) -> str:
    import pandas as pd

    from pipeline.errors import UserError

    try:
        return str(pd.Timedelta(text))
    except ValueError:
        raise UserError(f"not a duration: {text!r} (e.g. 10d, 72h)") from None


def parse_init_times(text: str) -> list[str]:
    """``2000-03-01,2000-03-05`` or ``START/END/STEP`` (e.g. ``2000-02-01/2000-03-01/5d``): the syntax of
    ``velocast forecast weather --init-times`` (one parser: :func:`pipeline.weather.modeling.data.parse_init_times`)."""
    from pipeline.errors import UserError
    from pipeline.weather.modeling.data import parse_init_times as parse

    try:
        return [str(t) for t in parse([text])]
    except ValueError as exc:
        raise UserError(f"--init-times: cannot parse {text!r} ({exc})") from None


@group("run").command("cycle")
def run_cycle_command(
    analysis: Path = typer.Option(..., "--analysis", help=ANALYSIS_HELP),
    store: Path = typer.Option(..., "--store", help=STORE_HELP),
    registry: Path | None = typer.Option(None, "--registry", help=REGISTRY_HELP),
    members: int = typer.Option(10, "--members", help="Ensemble members."),
    lead: str = typer.Option("5d", "--lead", help="Forecast length, e.g. 5d or 120h."),
    sampler: str = typer.Option("heun", "--sampler", help="Sampler."),
    sampler_steps: int = typer.Option(4, "--steps", help="Sampler steps per forecast step."),
    extend_hours: float = typer.Option(0.0, "--extend-hours", help="Embedded atmosphere: new hours to simulate first."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip verifying the cycles whose truth arrived."),
    runner: str = typer.Option("auto", "--runner", help=RUNNER_HELP),
) -> None:
    """Run one operational forecast cycle now (the forecast-cycle operation), then verify what is ready."""
    import json

    from pipeline.cli.verbs import execute_operation
    from pipeline.console import console
    from pipeline.registry import default_registry

    result = execute_operation("weather", "forecast-cycle", dict(
        analysis=str(analysis), store=str(store), registry=str(registry or default_registry()), members=members,
        lead=lead, sampler=sampler, sampler_steps=sampler_steps, extend_hours=extend_hours,
        verify_after=not no_verify), runner=runner)
    console.print_json(json.dumps(result, default=str))


@group("run").command("verify")
def run_verify_command(
    analysis: Path = typer.Option(..., "--analysis", help=ANALYSIS_HELP),
    store: Path = typer.Option(..., "--store", help=STORE_HELP),
    runner: str = typer.Option("auto", "--runner", help=RUNNER_HELP),
) -> None:
    """Verify every cycle whose truth has arrived (the verify operation); appends to the verification table."""
    import json

    from pipeline.cli.verbs import execute_operation
    from pipeline.console import console

    result = execute_operation("weather", "verify", dict(analysis=str(analysis), store=str(store)), runner=runner)
    console.print_json(json.dumps(result, default=str))
