"""The generic verbs: ``velocast VERB DOMAIN`` and ``velocast run DOMAIN`` for every registered domain.

Each :class:`~pipeline.base.Verb` becomes a Typer command whose options are the verb's flags plus
``--config`` (YAML), ``--set KEY=VALUE`` (repeatable), ``--out`` and ``--no-progress``; the config is built
defaults < YAML < ``--set`` < flags (:func:`pipeline.config.load_config`). ``run DOMAIN`` executes the
domain's :class:`~pipeline.runs.RunSpec` with a runner (``--runner``): ``local`` runs the stages in this
process; ``prefect`` (added by the ``flows`` plugin) runs them as a Prefect flow; ``auto`` takes Prefect when
it is installed and an API answers (or a temporary server starts), and the local runner otherwise.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Optional

import typer

from pipeline.base import Domain, Flag, Verb
from pipeline.cli.root import group
from pipeline.domains import domains, resolve

log = logging.getLogger(__name__)

RUNNER_HELP = ("auto (Prefect when an API answers or a temporary server starts, else in-process), local "
               "(in-process, no Prefect) or prefect.")


def _input_errors() -> tuple[type[BaseException], ...]:
    """The exception types that describe bad input at a verb's boundary (one line, exit 2)."""
    from models.training.checkpoint import CheckpointError

    return FileNotFoundError, KeyError, ValueError, CheckpointError


def _set_field(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def _flag_parameter(name: str, flag: Flag) -> inspect.Parameter:
    decls = [flag.option] + ([flag.short] if flag.short else [])
    if flag.positional:
        default, annotation = typer.Argument(..., metavar=flag.option, help=flag.help, show_default=False), flag.type
    elif flag.value is not None:  # a single switch
        default, annotation = typer.Option(False, *decls, help=flag.help), bool
    elif flag.type is list or flag.type == list[str]:
        default, annotation = typer.Option(None, *decls, help=flag.help), Optional[list[str]]
    else:
        default, annotation = typer.Option(None, *decls, help=flag.help), Optional[flag.type]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _common_parameters(*, out_help: str | None, config_help: str) -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    params = []
    if out_help is not None:
        params.append(inspect.Parameter("out", kw, default=typer.Option(..., "--out", "-o", help=out_help),
                                        annotation=Path))
    params += [
        inspect.Parameter("config", kw, default=typer.Option(None, "--config", "-c", help=config_help),
                          annotation=Optional[Path]),
        inspect.Parameter("sets", kw, default=typer.Option([], "--set", help="Override any config field: KEY=VALUE "
                                                                             "(dotted keys; repeatable)."),
                          annotation=list[str]),
        inspect.Parameter("no_progress", kw, default=typer.Option(False, "--no-progress", help="Hide progress bars."),
                          annotation=bool),
    ]
    return params


def _command(name: str, doc: str, params: list[inspect.Parameter], body: Any) -> Any:
    """A function Typer reads as a command with ``params`` (keyword-only) that calls ``body(**kwargs)``."""

    def command(**kwargs: Any) -> None:
        body(**kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = name
    command.__doc__ = doc
    return command


def verb_command(domain: Domain, verb: Verb) -> Any:
    """The Typer command of ``velocast VERB DOMAIN``."""
    flag_params = {f"flag_{i}": flag for i, flag in enumerate(verb.flags)}
    # positional arguments first, in declaration order: Typer reads arguments in the signature's order
    ordered = sorted(flag_params.items(), key=lambda item: not item[1].positional)
    params = [_flag_parameter(name, flag) for name, flag in ordered]
    params += _common_parameters(out_help=verb.out, config_help=f"YAML config ({verb.config.rpartition(':')[2]}).")

    def body(*, config: Path | None, sets: list[str], no_progress: bool, out: Path | None = None,
             **values: Any) -> None:
        from pipeline.config import load_config
        from pipeline.console import console
        from pipeline.errors import UserError, user_errors

        overrides: dict[str, Any] = {}
        for name, flag in flag_params.items():
            value = values[name]
            if flag.value is not None:
                if value:
                    _set_field(overrides, flag.field, flag.value)
                continue
            if value is None:
                continue
            try:
                _set_field(overrides, flag.field, flag.parse(value) if flag.parse else value)
            except ValueError as exc:
                raise UserError(f"{flag.option.split('/')[0]}: {exc}") from None
        cfg = load_config(resolve(verb.config), config, sets=sets, overrides=overrides,
                          flags={flag.field: flag.option.split("/")[0] for flag in verb.flags if not flag.positional})
        with user_errors(*_input_errors()):
            result = resolve(verb.run)(cfg, out=out, progress=not no_progress)
        shown = resolve(verb.summary)(result, cfg, out)
        if shown is not None:
            console.print(shown, highlight=False)

    return _command(f"{verb.name}_{domain.name}", verb.help, params, body)


def run_command(domain: Domain) -> Any:
    """The Typer command of ``velocast run DOMAIN``."""
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("quick", kw, default=typer.Option(False, "--quick", help="Start from the quick preset (the "
                                                                                   "same path at toy sizes); "
                                                                                   "--config and --set apply on top."),
                          annotation=bool),
        inspect.Parameter("refresh", kw, default=typer.Option(False, "--refresh", help="Recompute every stage "
                                                                                       "(ignore the cache)."),
                          annotation=bool),
        inspect.Parameter("runner", kw, default=typer.Option("auto", "--runner", help=RUNNER_HELP), annotation=str),
    ]
    params += _common_parameters(out_help="Run directory (stores, models, report, run.json); a finished stage is "
                                          "reused on a re-run.", config_help="YAML config of the run.")

    def body(*, out: Path, quick: bool, config: Path | None, sets: list[str], refresh: bool, runner: str,
             no_progress: bool) -> None:
        from pipeline.config import load_config
        from pipeline.errors import user_errors

        spec = resolve(domain.run)
        base = spec.presets["quick"]() if quick else None
        cfg = load_config(spec.config, config, sets=sets, base=base)
        from pipeline.runs.display import RunDisplay

        with user_errors(*_input_errors()), RunDisplay(spec, enabled=not no_progress):
            result = execute_run(spec, cfg, out, runner=runner, refresh=refresh, progress=not no_progress)
        print_run_summary(result)

    doc = f"Run the whole {domain.name} pipeline end to end: {domain.help}."
    return _command(f"run_{domain.name}", doc, params, body)


def execute_run(spec: Any, config: Any, out: Path, *, runner: str, refresh: bool, progress: bool) -> Any:
    """Run ``spec`` with the runner named ``runner`` (``auto``: Prefect if it can run now, else local)."""
    from pipeline.errors import UserError
    from pipeline.runs import RunnerUnavailable, get_runner, runner_names

    if runner == "auto":
        if "prefect" in runner_names():
            try:
                return get_runner("prefect")(spec, config, out, refresh=refresh, progress=progress)
            except RunnerUnavailable as exc:
                log.warning("%s; running the stages in this process instead", exc)
        return get_runner("local")(spec, config, out, refresh=refresh, progress=progress)
    if runner not in runner_names():
        raise UserError(f"--runner must be auto, {', '.join(runner_names())}; got {runner!r}")
    try:
        return get_runner(runner)(spec, config, out, refresh=refresh, progress=progress)
    except RunnerUnavailable as exc:
        raise UserError(f"{exc}; or run with --runner local") from None


def execute_operation(domain: str, operation: str, parameters: dict[str, Any], *, runner: str) -> Any:
    """Run ``domain``'s ``operation`` with the runner named ``runner`` (``auto`` as :func:`execute_run`)."""
    from pipeline.domains import run_operation
    from pipeline.errors import UserError
    from pipeline.runs import RunnerUnavailable, get_operation_runner, runner_names

    if runner == "auto":
        if "prefect" in runner_names():
            try:
                return get_operation_runner("prefect")(domain, operation, parameters)
            except RunnerUnavailable as exc:
                log.warning("%s; running the steps in this process instead", exc)
        return run_operation(domain, operation, parameters)
    if runner == "local":
        return run_operation(domain, operation, parameters)
    if runner not in runner_names():
        raise UserError(f"--runner must be auto, {', '.join(runner_names())}; got {runner!r}")
    try:
        return get_operation_runner(runner)(domain, operation, parameters)
    except RunnerUnavailable as exc:
        raise UserError(f"{exc}; or run with --runner local") from None


def print_run_summary(result: Any) -> None:
    """The end of a run, sized to the terminal: per-stage and total time, the headline scores against the
    baselines, where every output is, and the commands to try next."""
    from rich.table import Table

    from pipeline.console import console, print_table, rows_table, shown_path
    from pipeline.runs.display import clock

    root = result.layout.root
    stages = Table(title=f"{result.domain} run: {clock(result.seconds)} in all ({result.runner} runner)")
    for column in ("stage", "time"):
        stages.add_column(column, justify="right" if column == "time" else "left")
    for outcome in result.outcomes:
        stages.add_row(outcome.name, "cached" if outcome.cached else clock(outcome.seconds))
    stages.add_row("[bold]total", f"[bold]{clock(result.seconds)}")
    print_table(stages)
    summary = result.summary
    if summary.headline:
        print_table(rows_table(summary.headline, title=summary.title))
    for line in summary.lines:
        console.print(line, highlight=False)
    rows = [(name, shown_path(root / entry.path), entry.description)
            for name, entry in result.layout.artefacts().items() if (root / entry.path).exists()]
    if summary.html is not None and summary.html.exists():
        rows.append(("html report", shown_path(summary.html), "the report with its plots in one file"))
    if summary.plots:
        rows.append(("plots", shown_path(summary.plots[0].parent / "*.png"),
                     f"{len(summary.plots)} figure{'s' if len(summary.plots) > 1 else ''}"))
    print_table(_outputs_table(rows, title=f"outputs in {shown_path(root)}", width=console.width,
                               terminal=console.is_terminal))
    if summary.next_commands:
        console.print("[bold]next:", highlight=False)
        for command in summary.next_commands:
            console.print(f"  {command}", highlight=False, soft_wrap=True)


def _outputs_table(rows: list[tuple[str, str, str]], *, title: str, width: int, terminal: bool) -> Any:
    """Name, path (never broken, so it can be copied) and description of every output; in a terminal too
    narrow for the description beside the path, the description is left out."""
    from rich.table import Table

    table = Table(title=title, show_header=False, box=None, padding=(0, 1), title_justify="left")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("path", no_wrap=True)
    used = max((len(n) for n, _, _ in rows), default=0) + max((len(p) for _, p, _ in rows), default=0) + 4
    described = not terminal or width - used >= 30
    if described:
        table.add_column("what", style="dim")
    for name, path, what in rows:
        table.add_row(name, path, *((what,) if described else ()))
    return table


def register_domain_commands() -> None:
    """Add ``velocast VERB DOMAIN`` and ``velocast run DOMAIN`` for every registered domain."""
    for domain in domains():
        for verb in domain.verbs:
            group(verb.name).command(domain.name, help=verb.help)(verb_command(domain, verb))
        group("run").command(domain.name, help=f"{domain.help[:1].upper()}{domain.help[1:]}.")(run_command(domain))
