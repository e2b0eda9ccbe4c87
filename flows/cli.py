"""CLI: ``velocast deploy``, ``velocast run cycle`` / ``run verify`` and ``velocast model promote|list``.

Prefect and the pipeline are imported inside the command bodies so ``velocast --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipeline.cli.root import GROUP_HELP, app, group

GROUP_HELP.setdefault("model", "Model registry: which checkpoint the operational cycle forecasts with.")

ANALYSIS_HELP = "Analysis store (Zarr) the cycles start from and verify against."
STORE_HELP = "Forecast store (Icechunk) the cycles are committed to."
REGISTRY_HELP = "Model registry directory (default $VELOCAST_REGISTRY or ./models)."


@app.command("deploy")
def deploy_command(
    analysis: Path = typer.Option(..., "--analysis", help=ANALYSIS_HELP),
    store: Path = typer.Option(..., "--store", help=STORE_HELP),
    registry: Optional[Path] = typer.Option(None, "--registry", help=REGISTRY_HELP),
    pool: str = typer.Option("velocast", "--pool", help="Process work pool (created if absent)."),
    cycle_cron: str = typer.Option("0 */6 * * *", "--cycle-cron", help="Cron (UTC) of the forecast cycle."),
    verify_cron: str = typer.Option("30 0 * * *", "--verify-cron", help="Cron (UTC) of the daily verification."),
    members: int = typer.Option(10, "--members", help="Ensemble members per cycle."),
    lead: str = typer.Option("5d", "--lead", help="Forecast length, e.g. 5d or 120h."),
    sampler: str = typer.Option("heun", "--sampler", help="Sampler (euler, heun, midpoint, dpmpp_2s, churn)."),
    sampler_steps: int = typer.Option(4, "--steps", help="Sampler steps per forecast step."),
    extend_hours: float = typer.Option(
        0.0, "--extend-hours",
        help="Embedded atmosphere only: simulate this many hours of new analyses before each cycle."),
    paused: bool = typer.Option(False, "--paused", help="Register the schedules paused."),
    serve: bool = typer.Option(False, "--serve", help="No work pool: serve the deployments from this process."),
) -> None:
    """Register the forecast cycle (every 6 h) and verification (daily) deployments on a process work pool,
    or serve them from this process with --serve. Needs a Prefect API (PREFECT_API_URL)."""
    from flows.deploy import DeploySettings
    from flows.deploy import register as register_deployments
    from flows.deploy import serve as serve_deployments
    from pipeline.console import console
    from pipeline.registry import default_registry

    settings = DeploySettings(
        analysis=str(analysis), store=str(store), registry=str(registry or default_registry()), work_pool=pool,
        cycle_cron=cycle_cron, verify_cron=verify_cron, members=members, lead=lead, sampler=sampler,
        sampler_steps=sampler_steps, extend_hours=extend_hours, paused=paused,
    )
    if serve:
        serve_deployments(settings)
        return
    ids = register_deployments(settings)
    for name, deployment_id in ids.items():
        console.print(f"registered {name} ({deployment_id})")
    console.print(f"start a worker: prefect worker start --pool {pool}")


@group("run").command("cycle")
def run_cycle_command(
    analysis: Path = typer.Option(..., "--analysis", help=ANALYSIS_HELP),
    store: Path = typer.Option(..., "--store", help=STORE_HELP),
    registry: Optional[Path] = typer.Option(None, "--registry", help=REGISTRY_HELP),
    members: int = typer.Option(10, "--members", help="Ensemble members."),
    lead: str = typer.Option("5d", "--lead", help="Forecast length, e.g. 5d or 120h."),
    sampler: str = typer.Option("heun", "--sampler", help="Sampler."),
    sampler_steps: int = typer.Option(4, "--steps", help="Sampler steps per forecast step."),
    extend_hours: float = typer.Option(0.0, "--extend-hours", help="Embedded atmosphere: new hours to simulate first."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip verifying the cycles whose truth arrived."),
) -> None:
    """Run one operational forecast cycle now (the forecast-cycle flow), then verify what is ready."""
    import json

    from flows.weather import forecast_cycle
    from pipeline.console import console
    from pipeline.registry import default_registry

    result = forecast_cycle(str(analysis), str(store), str(registry or default_registry()), members=members,
                            lead=lead, sampler=sampler, sampler_steps=sampler_steps, extend_hours=extend_hours,
                            verify_after=not no_verify)
    console.print_json(json.dumps(result, default=str))


@group("run").command("verify")
def run_verify_command(
    analysis: Path = typer.Option(..., "--analysis", help=ANALYSIS_HELP),
    store: Path = typer.Option(..., "--store", help=STORE_HELP),
) -> None:
    """Verify every cycle whose truth has arrived (the verify flow); appends to the verification table."""
    import json

    from flows.weather import verify
    from pipeline.console import console

    console.print_json(json.dumps(verify(str(analysis), str(store)), default=str))


@group("model").command("promote")
def promote_command(
    run: Path = typer.Argument(..., help="Run directory (its newest checkpoint) or a checkpoint directory."),
    registry: Optional[Path] = typer.Option(None, "--registry", help=REGISTRY_HELP),
    name: Optional[str] = typer.Option(None, "--name", help="Registry name (default RUN-stepN)."),
    note: str = typer.Option("", "--note", help="Free-text note kept with the entry."),
) -> None:
    """Register a trained model's newest checkpoint and mark it current for the forecast cycle."""
    from pipeline.console import console
    from pipeline.registry import default_registry, promote

    entry = promote(run, registry=registry or default_registry(), name=name, note=note)
    console.print(f"current model: {entry.name} (step {entry.step}, {entry.sha256[:19]}…) -> {entry.checkpoint}")


@group("model").command("list")
def list_command(
    registry: Optional[Path] = typer.Option(None, "--registry", help=REGISTRY_HELP),
) -> None:
    """List the registered models; the current one is starred."""
    from rich.table import Table

    from pipeline.console import console
    from pipeline.registry import default_registry, list_models

    current, entries = list_models(registry or default_registry())
    table = Table(title="models")
    for column in ("", "name", "step", "sha256", "promoted", "checkpoint"):
        table.add_column(column)
    for e in entries:
        table.add_row("*" if e.name == current else "", e.name, str(e.step), e.sha256[:19], e.promoted, e.checkpoint)
    console.print(table)
