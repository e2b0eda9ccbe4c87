"""User-facing errors.

A :class:`UserError` is a problem with the user's input (a file, a flag, a config). The CLI prints its
message as one line and exits with status 2, without a traceback. Everything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import errno
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


class user_errors:
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


#: Operating-system errors that are the user's situation (a full disk, a read-only or missing place), not a bug.
USER_ERRNOS: dict[int, str] = {
    errno.ENOSPC: "no space left on the device; free some and run again (nothing was half-written)",
    errno.EDQUOT: "disk quota exceeded; free some space and run again (nothing was half-written)",
    errno.EROFS: "read-only file system; write the output somewhere writable",
    errno.EACCES: "permission denied; write the output somewhere you may write, or fix the permissions",
    errno.EPERM: "operation not permitted; write the output somewhere you may write",
    errno.ENOTDIR: "a part of this path is a file, not a directory",
    errno.EISDIR: "is a directory where a file was expected",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.ENOENT: "no such file or directory",
    errno.EFBIG: "file too large (a size limit of this system or shell); free space or raise the limit",
}


def os_error_message(exc: OSError) -> str | None:
    """One line for an operating-system error a user can act on (see :data:`USER_ERRNOS`), else None."""
    what = USER_ERRNOS.get(exc.errno or -1)
    if what is None:
        return None
    where = exc.filename if exc.filename is not None else None
    return f"{where}: {what}" if where else what
