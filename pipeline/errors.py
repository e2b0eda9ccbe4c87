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
