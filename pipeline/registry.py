"""A tiny model registry: which checkpoint the operational cycle forecasts with.

Layout: one directory (``--registry``, default ``$VELOCAST_REGISTRY`` or ``./models``) holding
``registry.json``::

    {"current": "NAME", "models": {"NAME": {"run": ..., "checkpoint": ..., "sha256": ..., "step": N,
                                            "promoted": ISO time, "note": ...}}}

``velocast model promote RUN`` records the run's newest checkpoint *directory* (not the run), so training
that continues later never changes what the cycle uses until it is promoted again; the weights' SHA-256
is kept and checked when the current model is resolved. The file is replaced atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import UserError

REGISTRY_FILE = "registry.json"
REGISTRY_ENV = "VELOCAST_REGISTRY"


def default_registry() -> Path:
    """``$VELOCAST_REGISTRY`` or ``./models``."""
    return Path(os.environ.get(REGISTRY_ENV) or "models")


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its checkpoint directory and weights hash."""

    name: str
    run: str
    checkpoint: str
    sha256: str
    step: int
    promoted: str
    note: str = ""


def _read(registry: Path) -> dict:
    path = registry / REGISTRY_FILE
    if not path.exists():
        return {"current": None, "models": {}}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"model registry is not valid JSON ({exc.msg})", path=path) from None
    data.setdefault("models", {})
    data.setdefault("current", None)
    return data


def _write(registry: Path, data: dict) -> None:
    registry.mkdir(parents=True, exist_ok=True)
    from pipeline.files import write_atomic

    write_atomic(registry / REGISTRY_FILE, json.dumps(data, indent=1, sort_keys=True))


def promote(run: str | Path, *, registry: str | Path, name: str | None = None, note: str = "") -> ModelEntry:
    """Register ``run``'s newest checkpoint (or a checkpoint directory) as ``name`` and mark it current."""
    from models.training.checkpoint import CheckpointError, resolve_checkpoint
    from pipeline.provenance import file_sha256

    try:
        ckpt = resolve_checkpoint(run)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    state = json.loads((ckpt / "state.json").read_text())
    registry = Path(registry)
    name = name or f"{Path(run).resolve().name}-step{int(state.get('step', 0))}"
    entry = ModelEntry(
        name=name, run=str(Path(run).resolve()), checkpoint=str(ckpt.resolve()),
        sha256=f"sha256:{file_sha256(ckpt / 'weights.safetensors')}", step=int(state.get("step", 0)),
        promoted=datetime.now(UTC).isoformat(timespec="seconds"), note=note,
    )
    data = _read(registry)
    data["models"][name] = asdict(entry)
    data["current"] = name
    _write(registry, data)
    return entry


def current_model(registry: str | Path) -> ModelEntry:
    """The model marked current; a UserError says how to promote one when there is none, or when its
    checkpoint is gone or changed."""
    registry = Path(registry)
    data = _read(registry)
    name = data.get("current")
    if not name or name not in data["models"]:
        raise UserError("no current model in the registry; promote one with `velocast model promote RUN "
                        f"--registry {registry}`", path=registry / REGISTRY_FILE)
    entry = ModelEntry(**data["models"][name])
    weights = Path(entry.checkpoint) / "weights.safetensors"
    if not weights.exists():
        raise UserError(f"the current model {name!r} points at a missing checkpoint {entry.checkpoint}",
                        path=registry / REGISTRY_FILE)
    from pipeline.provenance import file_sha256

    if f"sha256:{file_sha256(weights)}" != entry.sha256:
        raise UserError(f"the current model {name!r}: checkpoint weights changed since promotion "
                        "(hash mismatch); promote it again", path=weights)
    return entry


def list_models(registry: str | Path) -> tuple[str | None, list[ModelEntry]]:
    """(current name, every entry)."""
    data = _read(Path(registry))
    return data.get("current"), [ModelEntry(**v) for v in data["models"].values()]
