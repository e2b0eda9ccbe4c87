"""The ``velocast`` command line.

``main`` builds the app — the generic verbs of every registered domain (:mod:`pipeline.cli.verbs`), the
domain-specific commands of :data:`COMMAND_MODULES` (each registers its commands on a verb group of
:mod:`pipeline.cli.root`) and the commands and runners of installed plugins (the ``velocast.plugins``
entry points; ``flows`` is one) — runs it, and turns a :class:`~pipeline.errors.UserError` into one line
on stderr with exit status 2.
"""

from __future__ import annotations

import importlib
import logging
import sys
from importlib.metadata import entry_points

from pipeline.cli import root
from pipeline.cli.root import app, group
from pipeline.errors import UserError, os_error_message

log = logging.getLogger(__name__)

# Modules that register domain-specific commands (ingest, simulate, query, serve).
COMMAND_MODULES: tuple[str, ...] = ("pipeline.weather.cli", "pipeline.protein.cli", "pipeline.forecast_store.cli",
                                    "pipeline.cli.registry")
PLUGIN_GROUP = "velocast.plugins"
_loaded = False


def load_plugins() -> list[str]:
    """Import every ``velocast.plugins`` entry point (each registers its commands and runners); returns the
    names loaded. A plugin that cannot be imported is skipped with a debug line."""
    loaded = []
    for point in entry_points(group=PLUGIN_GROUP):
        try:
            point.load()
        except ImportError as exc:
            log.debug("velocast plugin %s not loaded: %s", point.name, exc)
            continue
        loaded.append(point.name)
    return loaded


def load_commands() -> None:
    """Register every command on the app (once)."""
    global _loaded
    if _loaded:
        return
    from pipeline.cli.verbs import register_domain_commands

    register_domain_commands()
    for name in COMMAND_MODULES:
        importlib.import_module(name)
    load_plugins()
    _loaded = True


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``velocast`` command."""
    load_commands()
    try:
        code = root.app(args=argv, prog_name="velocast", standalone_mode=False)
    except UserError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group called bare: its help, as Typer prints it
            root.app(args=argv, prog_name="velocast")
        usage = _usage_error(exc)
        if usage is not None:
            _fail(usage)
        message = os_error_message(exc) if isinstance(exc, OSError) else None
        if message is None:
            from pipeline.forecast_store.store import store_error_message

            reason = store_error_message(exc)
            message = None if reason is None else (f"a store could not be read or written ({reason}); it may be "
                                                   "damaged or unreachable")
        if message is None:
            raise
        _fail(message)
    else:
        sys.exit(code if isinstance(code, int) else 0)  # as Click's standalone mode: always SystemExit


def _usage_error(exc: BaseException) -> str | None:
    """One line for a command-line mistake (a missing option, a bad value, an unknown command), or None.

    Typer raises Click's usage errors from its vendored copy of Click, so they are recognised by shape."""
    if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
        return None
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} -h`)" if ctx is not None and getattr(ctx, "command_path", "") else ""
    return f"{exc.format_message()}{hint}"


def _fail(message: str) -> None:
    from rich.markup import escape

    from pipeline.console import err_console

    err_console.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}", highlight=False, soft_wrap=True)
    sys.exit(UserError.exit_code)


__all__ = ["app", "group", "load_commands", "load_plugins", "main"]
