"""The toy model: an MLP denoiser over 2-D points, built from its config and loaded from a run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from torch import nn

from models.networks import MLPDenoiser
from models.objectives import Objective, make_objective
from models.training import CheckpointError, load_checkpoint
from pipeline.config import StrictModel

MODES = 8


class ToyNetwork(StrictModel):
    """The MLP denoiser's size."""

    hidden: int = Field(128, description="hidden width")
    depth: int = Field(3, description="residual blocks")
    time_dim: int = Field(64, description="time-embedding features")


def build_network(config: ToyNetwork, *, conditional: bool) -> nn.Module:
    """The denoiser of 2-D points; a conditional one takes the one-hot mode (and supports CFG)."""
    return MLPDenoiser(dim=2, cond_dim=MODES if conditional else 0, cfg=conditional, **config.model_dump())


@dataclass
class ToyModel:
    """A trained toy model: network (EMA weights unless ``raw``), objective, metadata, checkpoint directory."""

    net: nn.Module
    objective: Objective
    conditional: bool
    metadata: dict
    checkpoint: Path


def load_toy_model(run: str | Path, *, raw: bool = False) -> ToyModel:
    """The newest checkpoint of a run (or a checkpoint dir); CheckpointError if it is not a toy model."""
    ckpt = load_checkpoint(run)
    meta = ckpt.extra
    if meta.get("domain") != "toy":
        raise CheckpointError(f"{ckpt.path}: not a toy model checkpoint (domain {meta.get('domain')!r}; was it "
                              "written by `velocast train toy`?)")
    net = build_network(ToyNetwork.model_validate(meta["network"]), conditional=bool(meta["conditional"]))
    net.load_state_dict(ckpt.model if raw or not ckpt.ema else ckpt.ema)
    net.eval()
    return ToyModel(net=net, objective=make_objective(meta["objective"]), conditional=bool(meta["conditional"]),
                    metadata=meta, checkpoint=ckpt.path)
