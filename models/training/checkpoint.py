"""Checkpoints without pickle: ``weights.safetensors`` + ``state.json`` in ``RUN/checkpoints/step_NNNNNNNN/``.

``weights.safetensors`` holds every tensor: ``model/<name>``, ``ema/<name>``, ``optim/<param index>/<key>``
(AdamW moments and step counts) and ``rng/torch_cpu`` / ``rng/cuda_<i>`` (torch RNG states, uint8).
``state.json`` holds ``format``, ``step``, the training ``config``, the optimizer's ``param_groups``,
free-form ``extra`` metadata and the SHA-256 of the weights file. A directory is written beside its
final name and renamed into place, so a checkpoint is either complete or absent.

Loading refuses anything that is not a well-formed safetensors file (pickle / ``torch.save`` payloads,
other suffixes, corrupt headers), weights whose SHA-256 differs from the one ``state.json`` recorded
(modified or damaged since they were saved), and weights that are not finite (a diverged run), with
:class:`CheckpointError`. A write interrupted before its rename leaves ``.step_*.tmp-PID``; the next save
removes those whose writer is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

FORMAT = "velocast-checkpoint/1"
WEIGHTS = "weights.safetensors"
STATE = "state.json"
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol ≥ 2; torch.save's zip container


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or not safetensors + JSON (e.g. a pickle payload)."""


@dataclass
class Checkpoint:
    """A loaded checkpoint (tensors on CPU)."""

    step: int
    model: dict[str, Tensor]
    ema: dict[str, Tensor]
    optimizer: dict[str, Any] | None
    rng: dict[str, Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_safetensors_file(path: str | Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a ``.safetensors`` file with a valid JSON header."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint weights not found")
    with open(path, "rb") as fh:
        head = fh.read(8)
        if any(head.startswith(m) for m in _PICKLE_MAGIC):
            raise CheckpointError(
                f"{path}: is a pickle / torch.save payload; "
                "velocast loads only safetensors + JSON checkpoints"
            )
        if path.suffix != ".safetensors":
            raise CheckpointError(
                f"{path}: expected a .safetensors file (pickle formats such as .pt/.pkl are refused)"
            )
        size = path.stat().st_size
        if len(head) < 8:
            raise CheckpointError(f"{path}: too short to be a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > size - 8 or n > 100 * 2**20:
            raise CheckpointError(f"{path}: not a safetensors file (bad header length)")
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict) or not all(
        k == "__metadata__" or (isinstance(v, dict) and {"dtype", "shape", "data_offsets"} <= v.keys())
        for k, v in header.items()
    ):
        raise CheckpointError(f"{path}: not a safetensors file (malformed header)")


def load_safetensors(path: str | Path) -> dict[str, Tensor]:
    """Validated :func:`safetensors.torch.load_file` (CPU)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    check_safetensors_file(path)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read safetensors: {exc}") from None


def save_checkpoint(
    run_dir: str | Path,
    *,
    step: int,
    model: dict[str, Tensor],
    ema: dict[str, Tensor],
    optimizer: dict[str, Any] | None,
    rng: dict[str, Tensor],
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    keep: int = 3,
) -> Path:
    """Write a checkpoint atomically; keep the newest ``keep`` (0 = all). Returns its directory."""
    from safetensors.torch import save_file

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_writes(root)
    final = root / f"step_{step:08d}"
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors: dict[str, Tensor] = {}
    tensors.update({f"model/{k}": v for k, v in model.items()})
    tensors.update({f"ema/{k}": v for k, v in ema.items()})
    groups: list[dict[str, Any]] = []
    scalars: dict[str, dict[str, Any]] = {}
    if optimizer is not None:
        for idx, state in optimizer["state"].items():
            for key, value in state.items():
                if isinstance(value, Tensor):
                    tensors[f"optim/{idx}/{key}"] = value
                else:
                    scalars.setdefault(str(idx), {})[key] = value
        groups = [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
            for g in optimizer["param_groups"]
        ]
    tensors.update({f"rng/{k}": v for k, v in rng.items()})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    try:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT})
    except Exception as exc:  # noqa: BLE001 (safetensors reports a full disk as its own error type)
        shutil.rmtree(tmp, ignore_errors=True)
        reason = " ".join(str(exc).split())
        os_error = re.search(r"\(os error (\d+)\)", reason)  # safetensors' Rust I/O errors carry the errno
        if os_error:
            reason = os.strerror(int(os_error.group(1))).lower()
        raise CheckpointError(f"{final}: cannot write the checkpoint ({reason}); nothing was written") from None
    state = {
        "format": FORMAT,
        "step": int(step),
        "config": config,
        "optimizer": None if optimizer is None else {"param_groups": groups, "scalars": scalars},
        "extra": extra or {},
        "weights_sha256": _sha256(tmp / WEIGHTS),
    }
    try:
        (tmp / STATE).write_text(json.dumps(state, indent=1, sort_keys=True))
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"{final}: cannot write the checkpoint ({exc.strerror}); nothing was written") from None
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _remove_abandoned_writes(root: Path) -> None:
    """Delete ``.step_*.tmp-PID`` directories whose writing process no longer exists."""
    for entry in root.glob(".step_*.tmp-*"):
        pid = entry.name.rpartition("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:
            pass


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.glob("step_*") if p.is_dir() and (p / STATE).is_file() and (p / WEIGHTS).is_file()
    )


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint directory of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A run dir (its newest checkpoint), a checkpoint dir, or its weights file → the checkpoint dir."""
    path = Path(path)
    if path.is_file():
        check_safetensors_file(path)  # refuses .pt / .pkl / pickle payloads with a clear message
        return path.parent
    if (path / STATE).is_file() or (path / WEIGHTS).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        partial = sorted((path / "checkpoints").glob("step_*")) if (path / "checkpoints").is_dir() else []
        if partial:
            missing = [name for name in (STATE, WEIGHTS) if not (partial[-1] / name).is_file()]
            raise CheckpointError(f"{partial[-1]}: incomplete checkpoint (no {' and no '.join(missing)}); it was "
                                  "damaged after it was written — train again, or restore the file")
        if not path.exists():
            raise CheckpointError(f"{path}: no checkpoint found: the path does not exist (give a run directory, a "
                                  f"checkpoint directory or its {WEIGHTS})")
        raise CheckpointError(f"{path}: no checkpoint found (expected {path}/checkpoints/step_*/{WEIGHTS})")
    return latest


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load from a run dir, checkpoint dir or weights file; refuses pickle with CheckpointError."""
    ckpt_dir = resolve_checkpoint(path)
    tensors = load_safetensors(ckpt_dir / WEIGHTS)
    try:
        state = json.loads((ckpt_dir / STATE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{ckpt_dir / STATE}: not a readable JSON state file: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt_dir / STATE}: not a {FORMAT} state file")
    recorded = state.get("weights_sha256")
    if recorded is not None and recorded != _sha256(ckpt_dir / WEIGHTS):
        raise CheckpointError(f"{ckpt_dir / WEIGHTS}: SHA-256 differs from the one state.json recorded when it was "
                              "saved; the weights were modified or damaged since")
    parts: dict[str, dict[str, Tensor]] = {"model": {}, "ema": {}, "optim": {}, "rng": {}}
    for key, value in tensors.items():
        kind, _, name = key.partition("/")
        if kind not in parts:
            raise CheckpointError(f"{ckpt_dir / WEIGHTS}: unexpected tensor {key!r}")
        parts[kind][name] = value
    broken = [name for kind in ("model", "ema") for name, value in parts[kind].items()
              if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if broken:
        raise CheckpointError(f"{ckpt_dir / WEIGHTS}: {len(broken)} weight tensors hold NaN or inf (e.g. {broken[0]!r}); "
                              "the training diverged — resume from an earlier checkpoint or train again with a lower "
                              "learning rate")
    optimizer = None
    if state.get("optimizer") is not None:
        per_param: dict[int, dict[str, Any]] = {}
        for name, value in parts["optim"].items():
            idx, _, key = name.partition("/")
            per_param.setdefault(int(idx), {})[key] = value
        for idx, values in state["optimizer"].get("scalars", {}).items():
            per_param.setdefault(int(idx), {}).update(values)
        optimizer = {"state": per_param, "param_groups": state["optimizer"]["param_groups"]}
    return Checkpoint(
        step=int(state["step"]),
        model=parts["model"],
        ema=parts["ema"],
        optimizer=optimizer,
        rng=parts["rng"],
        config=state.get("config", {}),
        extra=state.get("extra", {}),
        path=ckpt_dir,
    )


def load_weights(path: str | Path, module: torch.nn.Module, *, ema: bool = True) -> Checkpoint:
    """Load a checkpoint's EMA (default) or raw weights into ``module``; returns the checkpoint."""
    ckpt = load_checkpoint(path)
    weights = ckpt.ema if ema and ckpt.ema else ckpt.model
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{ckpt.path}: weights do not fit the network: {str(exc).splitlines()[0]}"
        ) from None
    return ckpt
