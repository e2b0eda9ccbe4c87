"""CLI: ``velocast deploy`` (the operations ``run cycle`` / ``run verify`` are the weather domain's CLI; the
model registry is :mod:`pipeline.cli.registry`).

Prefect and the pipeline are imported inside the command bodies so ``velocast --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipeline.cli.root import app
from pipeline.weather.cli import ANALYSIS_HELP, REGISTRY_HELP, STORE_HELP


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
