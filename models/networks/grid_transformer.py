"""A patch transformer denoiser for lat-lon grids (DiT-style, for GPU scale).

The noisy state and the condition fields are concatenated, cut into ``p × p`` patches, embedded, given a
learned position embedding, and passed through transformer blocks whose LayerNorms are modulated by the
flow time and global features (adaLN-Zero, Peebles & Xie 2023). The output is unpatchified to the grid.
Same call as :class:`~models.networks.grid_unet.GridUNet`:
``net(x_t, t, {"fields": ..., "globals": ...}, drop=None)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.guidance import NamedCondition
from models.networks.grid_conditioning import GridConditioner
from models.networks.grid_padding import GridPadding


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * width, width))
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, tokens: Tensor, embedding: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(embedding)[:, None].chunk(6, dim=-1)
        h = self.norm1(tokens) * (1 + scale1) + shift1
        tokens = tokens + gate1 * self.attention(h, h, h, need_weights=False)[0]
        h = self.norm2(tokens) * (1 + scale2) + shift2
        return tokens + gate2 * self.mlp(h)


class GridTransformer(nn.Module):
    """Patch transformer; any grid is padded to a multiple of ``patch_size`` (:mod:`.grid_padding`: wrapped columns
    on a ``periodic_longitude`` grid, edge replication otherwise) and the output cropped back; the padded grid
    must stay the same from call to call (learned positions)."""

    def __init__(self, *, in_channels: int, out_channels: int, condition_channels: int = 0, global_features: int = 0,
                 width: int = 256, depth: int = 8, heads: int = 8, patch_size: int = 2, dropout: float = 0.0,
                 max_tokens: int = 4096, periodic_longitude: bool = True) -> None:
        super().__init__()
        self.patch = patch_size
        self.periodic_longitude = periodic_longitude
        self.out_channels = out_channels
        self.conditioner = GridConditioner(embed_dim=width, time_dim=width // 4, global_features=global_features,
                                           condition_channels=condition_channels)
        self.patchify = nn.Conv2d(in_channels + condition_channels, width, patch_size, stride=patch_size)
        self.position = nn.Parameter(torch.zeros(1, max_tokens, width))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(_Block(width, heads, dropout) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.final_modulation = nn.Linear(width, 2 * width)
        self.head = nn.Linear(width, patch_size * patch_size * out_channels)
        for layer in (self.final_modulation, self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def multiple(self) -> int:
        """The grid sizes must be multiples of this (the patch size), after padding."""
        return self.patch

    def padding(self, height: int, width: int) -> GridPadding:
        """The pad/crop plan for an ``H × W`` input (whole patches; see :mod:`.grid_padding`)."""
        return GridPadding.plan(height, width, self.multiple, periodic_longitude=self.periodic_longitude)

    def forward(self, x: Tensor, t: Tensor, condition: NamedCondition = None, drop: Tensor | None = None) -> Tensor:
        p = self.patch
        plan = self.padding(*x.shape[-2:])
        x, embedding = self.conditioner(x, t, condition, drop)
        x = plan.pad(x)
        b, _, h, w = x.shape
        tokens = self.patchify(x).flatten(2).transpose(1, 2)  # (B, N, width)
        n = tokens.shape[1]
        if n > self.position.shape[1]:
            raise ValueError(f"{n} patches exceed max_tokens={self.position.shape[1]}")
        tokens = tokens + self.position[:, :n]
        for block in self.blocks:
            tokens = block(tokens, embedding)
        shift, scale = self.final_modulation(embedding)[:, None].chunk(2, dim=-1)
        out = self.head(self.final_norm(tokens) * (1 + scale) + shift)  # (B, N, p*p*C)
        out = out.reshape(b, h // p, w // p, p, p, self.out_channels)
        return plan.crop(out.permute(0, 5, 1, 3, 2, 4).reshape(b, self.out_channels, h, w))
