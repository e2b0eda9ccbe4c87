"""Conditioning shared by the grid denoisers (:mod:`.grid_unet`, :mod:`.grid_transformer`).

``condition = {"fields": (B, Cc, H, W) | None, "globals": (B, G) | None}``: the fields are concatenated
to the noisy state as channels; the flow time ``t`` (sinusoidal features) and the global features are
mapped by a SiLU MLP to one embedding per sample, plus a learned null embedding where ``drop`` marks a
classifier-free-guidance drop (see :mod:`models.guidance`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from models.networks.embeddings import SinusoidalTimeEmbedding


class GridConditioner(nn.Module):
    """``(x, t, condition, drop) -> (x ⊕ fields, embedding (B, embed_dim))`` with shape checks."""

    def __init__(self, *, embed_dim: int, time_dim: int, global_features: int, condition_channels: int) -> None:
        super().__init__()
        self.global_features = global_features
        self.condition_channels = condition_channels
        self.time = SinusoidalTimeEmbedding(time_dim)
        self.mlp = nn.Sequential(nn.Linear(time_dim + global_features, embed_dim), nn.SiLU(),
                                 nn.Linear(embed_dim, embed_dim))
        self.null_embedding = nn.Parameter(torch.zeros(embed_dim))

    def forward(
        self, x: Tensor, t: Tensor, condition: Mapping[str, Tensor | None] | None, drop: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        condition = condition or {}
        if t.ndim == 0 or t.numel() == 1:
            t = t.reshape(1).expand(x.shape[0])
        features = self.time(t).to(x.dtype)
        if self.global_features:
            globals_ = condition.get("globals")
            if globals_ is None:
                raise ValueError(f"this network expects {self.global_features} global features")
            features = torch.cat([features, globals_.to(x.dtype)], dim=-1)
        embedding = self.mlp(features)
        # The null embedding is always in the graph (times 0 without a drop) so DDP sees it used.
        dropped = drop.to(embedding.dtype)[:, None] if drop is not None else embedding.new_zeros(embedding.shape[0], 1)
        embedding = embedding + dropped * self.null_embedding
        if self.condition_channels:
            fields = condition.get("fields")
            if fields is None or fields.shape[1] != self.condition_channels:
                got = None if fields is None else fields.shape[1]
                raise ValueError(f"expected {self.condition_channels} condition channels, got {got}")
            x = torch.cat([x, fields.to(x.dtype)], dim=1)
        return x, embedding
