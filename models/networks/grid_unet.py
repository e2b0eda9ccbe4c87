"""A U-Net denoiser for fields on a regular latitude-longitude grid.

Inputs are ``(B, C, H, W)`` fields with ``H`` latitudes and ``W`` longitudes, of any size: the grid is padded
to a multiple of the U-Net's ``2**(levels-1)`` and the output cropped back (:mod:`.grid_padding`).
Convolutions pad *circularly* in longitude on a periodic (global) grid and by edge replication on a
bounded (regional) one, and by edge replication in latitude (the poles, or the domain's edges). Conditioning follows GenCast: condition fields (previous states, static fields, encodings
broadcast to the grid) are concatenated to the noisy state as extra channels, and the flow time (plus
optional global features such as time-of-day encodings) modulates every residual block through
FiLM (per-channel scale and shift).

Network call: ``net(x_t, t, condition, drop=None)`` with ``condition = {"fields": (B, Cc, H, W) | None,
"globals": (B, G) | None}`` (either key may be missing). ``drop`` ([B] bool, classifier-free guidance,
see :mod:`models.guidance`) marks samples whose condition was zeroed; they get a learned null embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.guidance import NamedCondition
from models.networks.grid_conditioning import GridConditioner
from models.networks.grid_padding import GridPadding


def pad_sphere(x: Tensor, pad: int, *, periodic: bool = True) -> Tensor:
    """Pad ``pad`` cells: circular in longitude (last dim) when ``periodic``, else replicated, and replicated at
    the poles (second-last dim)."""
    if pad == 0:
        return x
    # two concatenations: about 2x faster (forward + backward) than F.pad's circular + replicate modes
    if periodic:
        x = torch.cat([x[..., -pad:], x, x[..., :pad]], dim=-1)
    else:
        side = (*x.shape[:-1], pad)
        x = torch.cat([x[..., :1].expand(side), x, x[..., -1:].expand(side)], dim=-1)
    edge = (*x.shape[:-2], pad, x.shape[-1])
    return torch.cat([x[..., :1, :].expand(edge), x, x[..., -1:, :].expand(edge)], dim=-2)


class SphereConv(nn.Module):
    """A 2-D convolution (odd kernel) with :func:`pad_sphere` padding instead of zeros."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, periodic: bool = True) -> None:
        super().__init__()
        self.pad = kernel_size // 2
        self.periodic = periodic
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(pad_sphere(x, self.pad, periodic=self.periodic))


def _groups(channels: int) -> int:
    for groups in (32, 16, 8, 4, 2):
        if channels % groups == 0:
            return groups
    return 1


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, FiLM from the embedding, GroupNorm → SiLU → dropout → conv, + skip."""

    def __init__(self, in_channels: int, out_channels: int, embed_dim: int, dropout: float, *,
                 periodic: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = SphereConv(in_channels, out_channels, periodic=periodic)
        self.film = nn.Linear(embed_dim, 2 * out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = SphereConv(out_channels, out_channels, periodic=periodic)
        nn.init.zeros_(self.conv2.conv.weight)
        nn.init.zeros_(self.conv2.conv.bias)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(embedding)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over all grid cells (used at the coarsest resolution only)."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).reshape(b, c, h * w).transpose(1, 2)
        out, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class GridUNet(nn.Module):
    """U-Net on a lat-lon grid; output has ``out_channels`` channels at the input resolution.

    ``periodic_longitude``: the grid goes round the globe (global) rather than ending at a domain edge.
    ``grid_shape`` ``(H, W)``, where known, fixes the padding plan at construction (a periodic grid whose
    ``W`` is not divisible by ``2 ** (len(channel_mults) - 1)`` is then padded with wrapped columns and
    convolved as bounded); without it any ``H`` pads, and so does ``W`` on a bounded grid.
    """

    def __init__(self, *, in_channels: int, out_channels: int, condition_channels: int = 0, global_features: int = 0,
                 base_channels: int = 64, channel_mults: Sequence[int] = (1, 2, 2), blocks_per_level: int = 2,
                 attention_heads: int = 4, use_attention: bool = True, dropout: float = 0.0,
                 periodic_longitude: bool = True, grid_shape: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.levels = len(channel_mults)
        self.periodic_longitude = periodic_longitude
        self.multiple = 2 ** (self.levels - 1)
        self.grid_shape = None if grid_shape is None else (int(grid_shape[0]), int(grid_shape[1]))
        periodic = periodic_longitude and (grid_shape is None or grid_shape[1] % self.multiple == 0)
        self.periodic_inside = periodic
        embed_dim = 4 * base_channels
        self.conditioner = GridConditioner(embed_dim=embed_dim, time_dim=base_channels,
                                           global_features=global_features, condition_channels=condition_channels)
        self.stem = SphereConv(in_channels + condition_channels, base_channels, periodic=periodic)

        widths = [base_channels * m for m in channel_mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_widths = [base_channels]
        width = base_channels
        for level, level_width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(blocks_per_level):
                blocks.append(ResBlock(width, level_width, embed_dim, dropout, periodic=periodic))
                width = level_width
                skip_widths.append(width)
            self.down.append(blocks)
            last = level == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(width, width, 2, stride=2))
            if not last:
                skip_widths.append(width)

        self.mid1 = ResBlock(width, width, embed_dim, dropout, periodic=periodic)
        self.mid_attention = SelfAttention(width, attention_heads) if use_attention else nn.Identity()
        self.mid2 = ResBlock(width, width, embed_dim, dropout, periodic=periodic)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, level_width in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(blocks_per_level + 1):
                blocks.append(ResBlock(width + skip_widths.pop(), level_width, embed_dim, dropout, periodic=periodic))
                width = level_width
            self.up.append(blocks)
            self.upsample.append(nn.Upsample(scale_factor=2, mode="nearest") if level > 0 else nn.Identity())

        self.head_norm = nn.GroupNorm(_groups(width), width)
        self.head = SphereConv(width, out_channels, periodic=periodic)
        nn.init.zeros_(self.head.conv.weight)
        nn.init.zeros_(self.head.conv.bias)

    def padding(self, height: int, width: int) -> GridPadding:
        """The pad/crop plan for an ``H × W`` input (see :mod:`.grid_padding`)."""
        plan = GridPadding.plan(height, width, self.multiple, periodic_longitude=self.periodic_longitude)
        if plan.periodic_inside != self.periodic_inside:
            raise ValueError(f"this U-Net was built for a {self.grid_shape} grid; a periodic grid of width {width} "
                             f"needs grid_shape=({height}, {width}) at construction")
        return plan

    def forward(self, x: Tensor, t: Tensor, condition: NamedCondition = None, drop: Tensor | None = None) -> Tensor:
        plan = self.padding(*x.shape[-2:])
        x, embedding = self.conditioner(x, t, condition, drop)
        x = plan.pad(x)

        h = self.stem(x)
        skips = [h]
        for blocks, downsample in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, embedding)
                skips.append(h)
            if not isinstance(downsample, nn.Identity):
                h = downsample(h)
                skips.append(h)
        h = self.mid2(self.mid_attention(self.mid1(h, embedding)), embedding)
        for blocks, upsample in zip(self.up, self.upsample):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), embedding)
            h = upsample(h)
        return plan.crop(self.head(F.silu(self.head_norm(h))))
