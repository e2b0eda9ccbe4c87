"""Configuration of ``velocast train toy`` (YAML via :func:`pipeline.config.load_config`)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from models.training.loop import TrainConfig
from pipeline.config import StrictModel

DEFAULT_CONFIG = Path(str(files("pipeline.toy") / "toy.yaml"))


class ToyNetwork(StrictModel):
    """The MLP denoiser's size."""

    hidden: int = 128
    depth: int = 3
    time_dim: int = 64


class ToyConfig(StrictModel):
    """Train an MLP on the 8-Gaussian mixture; ``conditional`` adds the mode (one-hot) as the condition."""

    conditional: bool = False
    data_seed: int = 0
    network: ToyNetwork = ToyNetwork()
    train: TrainConfig = TrainConfig(
        steps=2000,
        batch_size=256,
        lr=3e-3,
        warmup_steps=50,
        ema_decay=0.99,
        log_every=100,
        checkpoint_every=500,
    )
