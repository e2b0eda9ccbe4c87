"""``velocast train toy``: the MLP denoiser on the 2-D mixture of 8 Gaussians with the core training loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from pydantic import Field

from models.objectives import make_objective, objective_json
from models.toy import EightGaussiansSource
from models.training import TrainConfig, TrainResult, train
from pipeline.config import StrictModel
from pipeline.errors import UserError
from pipeline.toy.modeling.model import ToyNetwork, build_network


class ToyTrainConfig(StrictModel):
    """Train an MLP on the 8-Gaussian mixture; ``conditional`` adds the mode (one-hot) as the condition."""

    conditional: bool = Field(False, description="the mode index (one-hot) is the condition; set "
                                                 "train.cond_dropout for classifier-free guidance")
    data_seed: int = Field(0, description="seed of the training batches")
    network: ToyNetwork = ToyNetwork()
    train: TrainConfig = TrainConfig(steps=2000, batch_size=256, lr=3e-3, warmup_steps=50, ema_decay=0.99,
                                     log_every=100, checkpoint_every=500)


def train_toy(config: ToyTrainConfig, *, out: str | Path, progress: bool = True,
              on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train (or resume) a toy model into run directory ``out`` (``on_step(step)`` after every step)."""
    try:
        objective = make_objective(config.train.objective)
    except ValueError as exc:
        raise UserError(f"train.objective: {exc}") from None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError("--out must be a directory", path=out)
    torch.set_num_threads(1)  # a 2-D MLP gains nothing from intra-op threads; they only contend for cores
    torch.manual_seed(config.train.seed)  # the initial weights are part of the run
    net = build_network(config.network, conditional=config.conditional)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(config.model_dump_json(indent=1))
    source = EightGaussiansSource(batch_size=config.train.batch_size, seed=config.data_seed,
                                  conditional=config.conditional)
    metadata = {"domain": "toy", "network": config.network.model_dump(mode="json"),
                "conditional": config.conditional, "objective": objective_json(config.train.objective)}
    return train(net=net, data=source, config=config.train, run_dir=out, objective=objective, progress=progress,
                 extra=metadata, on_step=on_step)
