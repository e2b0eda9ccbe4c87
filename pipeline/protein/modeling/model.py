"""Protein model configuration, construction, and loading a trained :class:`ProteinModel` from a run.

The network is a residual MLP over the features with a time embedding (``models.networks``); a forecast
model's condition ``z(t)`` is concatenated to its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from torch import nn

from models.networks import MLPDenoiser
from models.objectives import Objective, make_objective
from models.training import CheckpointError, load_checkpoint, load_weights
from pipeline.config import StrictModel
from pipeline.protein.modeling.data import Featuriser, featuriser_from_json
from pipeline.protein.topology import topology_from_dict

Task = Literal["ensemble", "forecast"]


class ProteinNetworkConfig(StrictModel):
    """The residual MLP denoiser."""

    hidden: int = Field(256, description="hidden width")
    depth: int = Field(3, description="residual blocks")
    time_dim: int = Field(128, description="time-embedding features")


def build_network(config: ProteinNetworkConfig, *, dim: int, task: Task) -> nn.Module:
    """The denoiser of ``dim`` features; a forecast model also takes the ``dim`` features of ``z(t)``."""
    return MLPDenoiser(dim, cond_dim=dim if task == "forecast" else 0, hidden=config.hidden, depth=config.depth,
                       time_dim=config.time_dim)


@dataclass
class ProteinModel:
    """A trained conformation model: network (EMA weights), objective, featuriser, topology, metadata."""

    net: nn.Module
    objective: Objective
    featuriser: Featuriser
    topology: object
    task: Task
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
    net = build_network(ProteinNetworkConfig.model_validate(meta["network"]), dim=featuriser.dim, task=meta["task"])
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
