"""Denoiser networks called as ``net(x_t, t, condition)`` (plus ``drop=`` for CFG, see models.guidance).

Shared pieces for domain networks (U-Net for grids, EGNN for molecules): :mod:`models.networks.embeddings`.
"""

from models.networks.embeddings import (
    FourierTimeEmbedding,
    SinusoidalTimeEmbedding,
    TimeEmbedding,
    flatten_condition,
)
from models.networks.mlp import MLPDenoiser

__all__ = [
    "FourierTimeEmbedding",
    "MLPDenoiser",
    "SinusoidalTimeEmbedding",
    "TimeEmbedding",
    "flatten_condition",
]
