"""User-facing errors.

A :class:`UserError` is a problem with the user's input (a file, a flag, a config). The CLI prints its
message as one line and exits with status 2, without a traceback. Everything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2.

    The message should name the file (or flag) and the problem, and where possible say what to do.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        text = " ".join(str(message).split())  # always one line
        super().__init__(f"{self.path}: {text}" if self.path else text)


class user_errors:  # noqa: N801 (used as a context manager)
    """Turn the given exception types into :class:`UserError` (one line, exit 2) at a CLI boundary.

    ``with user_errors(FileNotFoundError, ValueError): ...`` — use only around calls whose exceptions of
    those types describe bad input, not bugs.
    """

    def __init__(self, *types: type[BaseException]) -> None:
        self.types = types

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, traceback) -> bool:  # type: ignore[no-untyped-def]
        if kind is not None and issubclass(kind, self.types) and not issubclass(kind, UserError):
            message = value.args[0] if isinstance(value, KeyError) and value.args else str(value)
            raise UserError(str(message)) from None
        return False
