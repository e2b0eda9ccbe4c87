"""``RUN/run.json``: what every runner records of the stages it finished, and the run directory's lock.

One entry per stage: its cache key, the fingerprints of its outputs when it finished, its JSON result,
its wall time and when it finished. A stage is *cached* when its key equals the recorded one and its
outputs still have the recorded fingerprints; when the key differs (other config or inputs), the
stage's old outputs are removed before it runs again, so nothing made by another configuration is
reused. The file is replaced atomically after every stage, so a killed run resumes at the first stage
it had not finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from pipeline.provenance import utc_now

RECORD_FILE = "run.json"
CONFIG_FILE = "run_config.json"
LOCK_FILE = ".run.lock"


class RunRecord:
    """The stage entries of one run directory (read on creation, written by :meth:`finish`)."""

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root) / RECORD_FILE
        self.data: dict[str, Any] = {"stages": {}}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                loaded = None  # a damaged record only costs a recomputation
            if isinstance(loaded, dict) and isinstance(loaded.get("stages"), dict):
                self.data = loaded

    def entry(self, stage: str) -> dict[str, Any] | None:
        """The recorded entry of ``stage``, or None."""
        return self.data["stages"].get(stage)

    def finish(self, stage: str, *, key: str, outputs: dict[str, str], result: Any, seconds: float) -> None:
        """Record ``stage`` as finished and write the file atomically."""
        self.data["stages"][stage] = {"key": key, "outputs": outputs, "result": result,
                                      "seconds": round(seconds, 2), "finished": utc_now()}
        self.write()

    def forget(self, stage: str) -> None:
        """Drop ``stage``'s entry (its outputs are being replaced)."""
        if self.data["stages"].pop(stage, None) is not None:
            self.write()

    def write(self) -> None:
        from pipeline.files import write_atomic

        write_atomic(self.path, json.dumps(self.data, indent=1, default=str) + "\n")


def stage_seconds(root: str | Path) -> dict[str, float]:
    """The wall time of every stage a runner recorded in ``root`` (the last time each ran), by name."""
    return {name: float(entry.get("seconds", 0.0)) for name, entry in RunRecord(root).data["stages"].items()}


@contextlib.contextmanager
def run_lock(root: str | Path) -> Iterator[None]:
    """Hold the run directory's advisory lock; a second run on the same directory is refused."""
    path = Path(root) / LOCK_FILE
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError("another velocast run is writing to this directory; wait for it or choose another --out",
                            path=root) from None
        yield
    finally:
        handle.close()
