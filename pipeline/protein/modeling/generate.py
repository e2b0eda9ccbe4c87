"""Sampling conformations and rolling out trajectory forecasts, written as structure stores + exports.

``samples_per_cpu_second`` is measured with the process CPU clock (all threads) around the sampling
loop, the same clock the MD cost is recorded with, and stored in the output's attributes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.networks import MLPDenoiser
from models.objectives import Objective, make_objective
from models.samplers import Denoiser, sample
from models.training import CheckpointError, load_checkpoint, load_weights
from pipeline.protein.modeling.data import Featuriser, featuriser_from_json
from pipeline.protein.topology import topology_from_dict
from pipeline.provenance import file_sha256, provenance_record


@dataclass
class ProteinModel:
    """A trained conformation model: network (EMA weights), objective, featuriser, topology, metadata."""

    net: nn.Module
    objective: Objective
    featuriser: Featuriser
    topology: object
    task: str
    metadata: dict
    checkpoint: Path

    @property
    def dim(self) -> int:
        return self.featuriser.dim


def load_protein_model(run: str | Path) -> ProteinModel:
    """The newest checkpoint of a run (or a checkpoint dir); CheckpointError if it is not a protein model."""
    ckpt = load_checkpoint(run)
    meta = ckpt.extra
    if meta.get("domain") != "protein":
        raise CheckpointError(f"{ckpt.path}: not a protein model checkpoint (domain {meta.get('domain')!r})")
    featuriser = featuriser_from_json(meta.get("featuriser") or meta["standardiser"])
    dim = featuriser.dim
    network = meta["network"]
    net = MLPDenoiser(
        dim,
        cond_dim=dim if meta["task"] == "forecast" else 0,
        hidden=network["hidden"],
        depth=network["depth"],
        time_dim=network["time_dim"],
    )
    load_weights(ckpt.path, net, ema=True)
    net.eval()
    return ProteinModel(
        net=net,
        objective=make_objective(meta.get("objective", "fm")),
        featuriser=featuriser,
        topology=topology_from_dict(meta["topology"]),
        task=meta["task"],
        metadata=meta,
        checkpoint=ckpt.path,
    )


@torch.no_grad()
def _draw(
    model: ProteinModel,
    n: int,
    *,
    condition: torch.Tensor | None,
    sampler: str,
    steps: int,
    generator: torch.Generator,
) -> tuple[np.ndarray, int]:
    noise = torch.randn(n, model.dim, generator=generator)
    denoiser = Denoiser(model.net, model.objective, condition=condition)
    result = sample(denoiser, noise, sampler=sampler, steps=steps, generator=generator)
    return result.samples.numpy(), result.nfe


@dataclass(frozen=True)
class Generated:
    """Coordinates in nm, the CPU seconds spent, and the network calls per sample (or per step)."""

    coordinates: np.ndarray
    cpu_seconds: float
    nfe: int


def sample_conformations(
    model: ProteinModel,
    *,
    n: int,
    sampler: str = "heun",
    steps: int = 16,
    seed: int = 0,
    batch_size: int = 4096,
    on_batch=None,
) -> Generated:  # type: ignore[no-untyped-def]
    """``n`` independent conformations ``(n, N, 3)`` from an ensemble model."""
    if model.task != "ensemble":
        raise ValueError(f"this is a {model.task} model; sample conformations with an ensemble model")
    generator = torch.Generator().manual_seed(seed)
    start = time.process_time()
    parts, nfe = [], 0
    for begin in range(0, n, batch_size):
        drawn, nfe = _draw(
            model,
            min(batch_size, n - begin),
            condition=None,
            sampler=sampler,
            steps=steps,
            generator=generator,
        )
        parts.append(drawn)
        if on_batch is not None:
            on_batch(len(drawn))
    coordinates = model.featuriser.decode(np.concatenate(parts))
    return Generated(coordinates=coordinates, cpu_seconds=time.process_time() - start, nfe=nfe)


def forecast_trajectories(
    model: ProteinModel,
    *,
    start: np.ndarray,
    steps: int,
    members: int,
    sampler: str = "heun",
    sampler_steps: int = 16,
    seed: int = 0,
    on_step=None,
) -> Generated:  # type: ignore[no-untyped-def]
    """``members`` trajectories ``(M, steps + 1, N, 3)`` from ``start`` (N, 3) nm, one lag per step."""
    if model.task != "forecast":
        raise ValueError(f"this is a {model.task} model; forecast trajectories with a forecast model")
    generator = torch.Generator().manual_seed(seed)
    begin = time.process_time()
    first = model.featuriser.encode(np.asarray(start, dtype=np.float64)[None])
    current = torch.from_numpy(np.repeat(first, members, axis=0))
    path, nfe = [current.numpy()], 0
    for _ in range(steps):
        drawn, nfe = _draw(
            model, members, condition=current, sampler=sampler, steps=sampler_steps, generator=generator
        )
        current = torch.from_numpy(drawn)
        path.append(drawn)
        if on_step is not None:
            on_step(1)
    z = np.stack(path, axis=1)  # (M, steps + 1, 3N)
    return Generated(
        coordinates=model.featuriser.decode(z), cpu_seconds=time.process_time() - begin, nfe=nfe
    )


def generation_attrs(model: ProteinModel, generated: Generated, *, command: str, settings: dict) -> dict:
    """Store attributes: cost figures and provenance (checkpoint hash, data, settings)."""
    n = generated.coordinates.shape[0] * (
        generated.coordinates.shape[1] - 1 if model.task == "forecast" else 1
    )
    rate = n / max(generated.cpu_seconds, 1e-9)
    return {
        "samples_per_cpu_second": rate,
        "cpu_seconds": generated.cpu_seconds,
        "network_calls_per_sample": generated.nfe,
        "provenance": provenance_record(
            source=command,
            config=settings,
            samples_per_cpu_second=rate,
            checkpoint=f"sha256:{file_sha256(model.checkpoint / 'weights.safetensors')}",
            data_snapshot=model.metadata.get("data"),
        ),
    }
