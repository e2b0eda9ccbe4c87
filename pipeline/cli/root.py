"""The root ``velocast`` Typer app and its verb groups (``ingest``, ``simulate``, ``train`` ...).

Domain modules register their commands on a group: ``@group("ingest").command("weather")``. A group
is added to the root app the first time it is asked for, so ``velocast --help`` lists only what exists.
Command modules import heavy libraries inside the command body so ``--help`` stays fast.
"""

from __future__ import annotations

import logging

import typer

from pipeline import __version__

GROUP_HELP: dict[str, str] = {
    "ingest": "Bring data into a validated, normalised Zarr training store.",
    "simulate": "Generate data with the embedded simulators (no download needed).",
    "train": "Train a flow-matching model with the core training loop.",
    "sample": "Draw samples from a trained model.",
    "forecast": "Roll a trained model out into forecasts.",
    "distill": "Distil a trained model into a few-step sampler.",
    "calibrate": "Fit a trained model's ensemble spread on validation data.",
    "evaluate": "Score forecasts or samples against the truth and write a report.",
    "export": "Export stores to other tools' layouts (e.g. WeatherBench2's forecast Zarr).",
    "run": "Run a whole pipeline end to end (simulate, ingest, train, forecast, evaluate).",
    "query": "Query a forecast store: point plumes, regional statistics, threshold probabilities.",
    "store": "Maintain a forecast store (garbage collection).",
}

app = typer.Typer(
    name="velocast",
    help="velocast: probabilistic forecasting with flow matching, for weather and molecules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_groups: dict[str, typer.Typer] = {}


def group(name: str) -> typer.Typer:
    """The verb group ``name`` (created and registered on first use)."""
    if name not in _groups:
        sub = typer.Typer(
            no_args_is_help=True,
            pretty_exceptions_enable=False,
            context_settings={"help_option_names": ["-h", "--help"]},
        )
        app.add_typer(sub, name=name, help=GROUP_HELP.get(name, ""))
        _groups[name] = sub
    return _groups[name]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"velocast {__version__}")
        raise typer.Exit()


def configure_logging(verbose: bool) -> None:
    """Rich-formatted logging to stderr: INFO by default, DEBUG with ``--verbose``."""
    from rich.logging import RichHandler

    from pipeline.console import err_console

    class NamedRunHandler(RichHandler):
        """Prefect's task- and flow-run lines carry the run's name as an attribute, not in the message
        ("Finished in state Completed()"): show it ("simulate: Finished in state Completed()")."""

        def format(self, record: logging.LogRecord) -> str:
            text = super().format(record)
            name = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None)
            return f"{name}: {text}" if name else text

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[NamedRunHandler(console=err_console, show_path=verbose, rich_tracebacks=False)],
        force=True,
    )
    # Third-party chatter stays at WARNING unless asked for.
    for noisy in ("distributed", "asyncio", "urllib3", "fsspec", "numcodecs", "httpx", "matplotlib", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # cfgrib logs every message it skips with a traceback; velocast checks GRIB files itself and says why in
    # one line, so cfgrib's own reports are shown only with --verbose.
    logging.getLogger("cfgrib").setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    # zarr's writer tasks that an error (a full disk) abandoned are reported by asyncio at shutdown: the one
    # line that says what happened is velocast's.
    logging.getLogger("asyncio").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail to stderr."),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads for torch (default: the CPUs this process may use, less the "
                                       "load others put on them; also $VELOCAST_THREADS).",
    ),
) -> None:
    """velocast: probabilistic forecasting with flow matching, for weather and molecules."""
    configure_logging(verbose)
    from models.threads import apply_threads

    try:
        choice = apply_threads(threads)
    except ValueError as exc:
        from pipeline.errors import UserError

        raise UserError(str(exc)) from None
    logging.getLogger("velocast").debug("using %s", choice.describe())
