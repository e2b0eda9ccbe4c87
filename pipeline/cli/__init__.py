"""The ``velocast`` command line.

``main`` imports every command module (each registers its commands on a verb group of
:mod:`pipeline.cli.root`), runs the app, and turns a :class:`~pipeline.errors.UserError` into one line on
stderr with exit status 2.
"""

from __future__ import annotations

import importlib
import sys

from pipeline.cli import root
from pipeline.cli.root import app, group
from pipeline.errors import UserError

# Modules that register commands. Add a domain's CLI module here.
COMMAND_MODULES: tuple[str, ...] = ("pipeline.protein.cli", "pipeline.forecast_store.cli", "pipeline.weather.cli",
    "pipeline.weather.modeling.cli",
    "pipeline.weather.modeling.distill_cli",
    "pipeline.protein.modeling.distill_cli",
    "pipeline.protein.modeling.cli",
    "pipeline.toy.cli",
    "flows.cli",
)


def load_commands() -> None:
    """Import every command module so its commands are registered on the app."""
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``velocast`` command."""
    load_commands()
    try:
        root.app(args=argv, prog_name="velocast")
    except UserError as exc:
        from rich.markup import escape

        from pipeline.console import err_console

        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(UserError.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "group", "load_commands", "main"]
