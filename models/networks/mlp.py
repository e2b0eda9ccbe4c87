"""A small residual MLP denoiser for vectors (the toy problem and tests)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.guidance import Condition
from models.networks.embeddings import TimeEmbedding, flatten_condition


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.lin1 = nn.Linear(width, width)
        self.lin2 = nn.Linear(width, width)
        self.act = nn.SiLU()

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        return h + self.lin2(self.act(self.lin1(self.act(self.norm(h) + temb))))


class MLPDenoiser(nn.Module):
    """``net(x [B, dim], t [B], condition, *, drop=None) -> [B, dim]``.

    ``condition`` (any nest flattening to ``cond_dim`` features, or None) is concatenated to the input;
    with ``cfg=True`` a drop flag (1 = unconditional) is an extra input feature (see models.guidance).
    """

    def __init__(
        self,
        dim: int,
        *,
        cond_dim: int = 0,
        hidden: int = 128,
        depth: int = 3,
        time_dim: int = 64,
        cfg: bool = False,
    ) -> None:
        super().__init__()
        self.dim, self.cond_dim, self.cfg = dim, cond_dim, cfg
        self.time = TimeEmbedding(hidden, dim=time_dim)
        self.inp = nn.Linear(dim + cond_dim + int(cfg), hidden)
        self.blocks = nn.ModuleList(_Block(hidden) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(
        self, x: Tensor, t: Tensor, condition: Condition = None, *, drop: Tensor | None = None
    ) -> Tensor:
        batch = x.shape[0]
        feats = [x]
        if self.cond_dim:
            cond = flatten_condition(condition, batch)
            feats.append(cond.to(x.dtype) if cond is not None else x.new_zeros(batch, self.cond_dim))
        if self.cfg:
            flag = drop if drop is not None else torch.zeros(batch, dtype=torch.bool, device=x.device)
            feats.append(flag.to(x.dtype).reshape(batch, 1))
        h = self.inp(torch.cat(feats, dim=-1))
        temb = self.time(t.reshape(-1).expand(batch) if t.numel() == 1 else t)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(h)
