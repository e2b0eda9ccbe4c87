"""Time embeddings and condition flattening shared by the denoiser networks."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from models.guidance import Condition


class SinusoidalTimeEmbedding(nn.Module):
    """Transformer-style ``[cos(s·t·f_k), sin(s·t·f_k)]``, ``f_k = max_period^(-k/half)``, ``s = scale``."""

    def __init__(self, dim: int, *, scale: float = 1000.0, max_period: float = 10000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError("embedding dim must be even")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs * scale, persistent=False)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        arg = t.float().reshape(-1, 1) * self.freqs
        return torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)


class FourierTimeEmbedding(nn.Module):
    """Gaussian Fourier features ``[cos(2π t w), sin(2π t w)]``, ``w ~ N(0, std²)`` fixed (seeded, saved)."""

    def __init__(self, dim: int, *, std: float = 16.0, seed: int = 0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError("embedding dim must be even")
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("w", torch.randn(dim // 2, generator=gen) * std)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        arg = 2 * math.pi * t.float().reshape(-1, 1) * self.w
        return torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)


class TimeEmbedding(nn.Module):
    """Embedding of ``t`` followed by a 2-layer SiLU MLP to ``out_dim``."""

    def __init__(
        self, out_dim: int, *, dim: int = 64, kind: Literal["sinusoidal", "fourier"] = "sinusoidal"
    ) -> None:
        super().__init__()
        self.embed: nn.Module = (
            SinusoidalTimeEmbedding(dim) if kind == "sinusoidal" else FourierTimeEmbedding(dim)
        )
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(self.embed(t))


def flatten_condition(condition: Condition, batch: int) -> Tensor | None:
    """Concatenate every tensor of a nest as ``[B, -1]`` (dict keys in sorted order); None stays None."""
    parts: list[Tensor] = []

    def visit(c: Condition) -> None:
        if c is None:
            return
        if isinstance(c, Tensor):
            parts.append(c.reshape(batch, -1).float())
        elif isinstance(c, dict):
            for key in sorted(c):
                visit(c[key])
        else:
            for item in c:
                visit(item)

    visit(condition)
    return torch.cat(parts, dim=-1) if parts else None
