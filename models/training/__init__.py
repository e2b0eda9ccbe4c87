"""The generic training loop, checkpoints (safetensors + JSON), EMA, DDP helpers, data sources."""

from models.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from models.training.data import Batch, BatchSource, TensorSource
from models.training.distributed import DistInfo, init_distributed
from models.training.ema import EMA
from models.training.loop import TrainConfig, TrainResult, lr_at, train

__all__ = [
    "EMA",
    "Batch",
    "BatchSource",
    "Checkpoint",
    "CheckpointError",
    "DistInfo",
    "TensorSource",
    "TrainConfig",
    "TrainResult",
    "init_distributed",
    "latest_checkpoint",
    "load_checkpoint",
    "load_weights",
    "lr_at",
    "save_checkpoint",
    "train",
]
