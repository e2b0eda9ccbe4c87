"""Writing beside and renaming into place, and cleaning up what a killed writer left.

Every output velocast writes (a training or structure store, a report directory, a query result, a run
record, a student run) is first written to a hidden sibling ``.NAME.tmp-PID-RANDOM`` and renamed into place,
so neither a reader nor a crash ever sees half an output. A writer killed before its rename leaves that
sibling behind: :func:`clean_stale` removes the siblings of an output whose writer process is gone, and
every writer calls it before it writes, so the next run on the same output cleans up after the last one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.errors import UserError

log = logging.getLogger(__name__)

LEGACY_AGE_S = 3600.0  # temporaries named before the writer's pid was part of the name: stale after an hour


def check_writable(folder: str | Path) -> None:
    """A UserError unless files can be created in ``folder`` (or, when it does not exist yet, in the nearest
    existing folder above it): a part of the path that is a file, a read-only file system, no permission."""
    probe = Path(folder).expanduser().absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError("is a file, so nothing can be written below it; choose another output path", path=probe)
    if not os.access(probe, os.W_OK):
        read_only = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
        raise UserError("read-only file system; write the output somewhere writable" if read_only else
                        "permission denied; write the output somewhere you may write", path=probe)


def temp_beside(out: str | Path, *, directory: bool = False) -> Path:
    """A fresh hidden sibling of ``out`` for this process (created as a directory if ``directory``); a place
    that cannot be written is a UserError (:func:`check_writable`)."""
    out = Path(out)
    check_writable(out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if directory:
        tmp.mkdir()
    return tmp


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temps(out: str | Path) -> list[Path]:
    """The temporaries beside ``out`` whose writer is gone (see the module doc)."""
    out = Path(out)
    if not out.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.tmp-(?:(\d+)-[0-9a-f]{{8}}|[0-9a-z_]+)$")
    found = []
    for entry in out.parent.iterdir():
        match = pattern.match(entry.name)
        if match is None:
            continue
        pid = match.group(1)
        if pid is not None:
            if int(pid) != os.getpid() and not pid_alive(int(pid)):
                found.append(entry)
        elif time.time() - entry.lstat().st_mtime > LEGACY_AGE_S:
            found.append(entry)
    return found


def clean_stale(out: str | Path) -> int:
    """Remove the stale temporaries beside ``out``; returns how many (logged)."""
    removed = 0
    for entry in stale_temps(out):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
        log.info("removed %s, left by an interrupted write", entry)
    return removed


def remove_tree(path: Path, *, tries: int = 10, wait_s: float = 0.1) -> None:
    """Remove a temporary directory for good: writer tasks that an error abandoned (zarr writes asynchronously)
    may still create files in it for a moment, so remove until it stays gone."""
    for _ in range(tries):
        shutil.rmtree(path, ignore_errors=True)
        time.sleep(wait_s)
        if not path.exists():
            return


RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2  # the process's own libc (no ldconfig lookup)
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), RENAME_EXCHANGE)
    return done == 0


def replace_into(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out`` atomically. An existing ``out`` directory is swapped with ``tmp`` in one step
    where the kernel can (then removed), so a reader or a kill never finds ``out`` missing; elsewhere it is
    moved aside first (a kill in between leaves both as temporaries the next write removes)."""
    if out.is_dir() and not out.is_symlink():
        if _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        trash = temp_beside(out)
        os.replace(out, trash)
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextlib.contextmanager
def run_directory(out: str | Path, *, resumable: Callable[[Path], bool]) -> Iterator[Path]:
    """A work directory that a later run resumes (a training run): checked writable before any work, created,
    and removed again when the body fails having created it and left nothing ``resumable`` in it (so a
    failure before the first checkpoint leaves no half run behind; one after it keeps the work)."""
    out = Path(out)
    check_writable(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except BaseException:
        if created and not resumable(out):
            remove_tree(out)
        raise


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to the file ``path`` beside and rename (a reader or a kill never sees half of it); what an
    earlier writer left is removed first, and this one's temporary is gone however the write ends."""
    clean_stale(path)
    tmp = temp_beside(path)
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def training_directory(out: str | Path, *, config_json: str) -> Iterator[Path]:
    """The run directory of a training run (:func:`run_directory`; resumable once it holds a checkpoint), with
    the run's ``train_config.json`` written into it."""
    from models.training import latest_checkpoint

    with run_directory(out, resumable=lambda run: latest_checkpoint(run) is not None) as run:
        write_atomic(run / "train_config.json", config_json)
        yield run
