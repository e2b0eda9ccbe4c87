"""CLI: ``velocast model promote|list``: the model registry (which checkpoint the operational cycle forecasts with)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.root import GROUP_HELP, group

GROUP_HELP.setdefault("model", "Model registry: which checkpoint the operational cycle forecasts with.")
REGISTRY_HELP = "Model registry directory (default $VELOCAST_REGISTRY or ./models)."


@group("model").command("promote")
def promote_command(
    run: Path = typer.Argument(..., help="Run directory (its newest checkpoint) or a checkpoint directory."),
    registry: Path | None = typer.Option(None, "--registry", help=REGISTRY_HELP),
    name: str | None = typer.Option(None, "--name", help="Registry name (default RUN-stepN)."),
    note: str = typer.Option("", "--note", help="Free-text note kept with the entry."),
) -> None:
    """Register a trained model's newest checkpoint and mark it current for the forecast cycle."""
    from pipeline.console import console
    from pipeline.registry import default_registry, promote

    entry = promote(run, registry=registry or default_registry(), name=name, note=note)
    console.print(f"current model: {entry.name} (step {entry.step}, {entry.sha256[:19]}…) -> {entry.checkpoint}")


@group("model").command("list")
def list_command(
    registry: Path | None = typer.Option(None, "--registry", help=REGISTRY_HELP),
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
