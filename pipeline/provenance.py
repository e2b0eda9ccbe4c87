"""Provenance: what produced a store (code version, config, sources, checkpoint hash, data snapshot)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline import __version__

#: Attributes that mark a store of an embedded simulator, not the real Earth (its maps get no coastlines):
#: a simulation's own attributes, and the flag weather forecast stores carry from the data they started from.
SIMULATOR_ATTRS = ("simulator_config", "simulator_version", "simulated")


def is_simulated(attrs: Any) -> bool:
    """Whether a store's attributes (a mapping) say it holds an embedded simulator's data, not the real Earth."""
    return any(bool(attrs.get(key)) for key in SIMULATOR_ATTRS)


@lru_cache(maxsize=1)
def code_version() -> str:
    """``velocast <version>``, plus the git commit (and ``-dirty``) when run from a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"velocast {__version__}"
    return f"velocast {__version__} (git {commit}{'-dirty' if dirty else ''})"


def utc_now() -> str:
    """The current UTC time as an ISO 8601 string with a ``Z`` suffix."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def file_sha256(path: str | Path, *, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def config_hash(config: Any) -> str:
    """A stable short hash of a JSON-serialisable config (pydantic models are dumped first)."""
    if hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def provenance_record(**fields: Any) -> dict[str, Any]:
    """The standard provenance attributes: code version and creation time, plus the given fields."""
    record: dict[str, Any] = {"code_version": code_version(), "created": utc_now()}
    for key, value in fields.items():
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        record[key] = value
    return record
