"""Pad a lat-lon grid to the size a network needs and crop the output back: any grid trains.

A U-Net that halves the grid ``L`` times needs ``H`` and ``W`` divisible by ``m = 2**L``; a patch
transformer needs multiples of its patch. :class:`GridPadding` plans the smallest padding:

* latitude (never periodic): ``(-H) mod m`` rows, split between south and north, replicating the edge row;
* longitude on a **bounded** (regional) grid: ``(-W) mod m`` columns replicating the edge columns;
* longitude on a **periodic** (global) grid: none when ``W`` is divisible (the convolutions wrap round, exact);
  otherwise the grid is no longer periodic at the padded size, so it is padded with the true neighbouring
  columns from the other side (at least ``m`` on each side, so the coarsest level still sees across the
  seam) and the network treats it as bounded.

``crop`` removes exactly what ``pad`` added, so the output has the input's ``H × W``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class GridPadding:
    """Rows added south/north and columns added west/east; ``wrap`` pads longitude with the columns from the
    other side of a periodic grid (else the edge is replicated); ``periodic_inside``: the convolutions may wrap
    longitude at the padded size."""

    south: int
    north: int
    west: int
    east: int
    wrap: bool
    periodic_inside: bool

    @classmethod
    def plan(cls, height: int, width: int, multiple: int, *, periodic_longitude: bool) -> GridPadding:
        rows = (-height) % multiple
        columns = (-width) % multiple
        if periodic_longitude and columns == 0:
            return cls(rows // 2, rows - rows // 2, 0, 0, wrap=False, periodic_inside=True)
        if periodic_longitude:
            west = multiple + columns // 2
            east = multiple + columns - columns // 2
            return cls(rows // 2, rows - rows // 2, west, east, wrap=True, periodic_inside=False)
        return cls(rows // 2, rows - rows // 2, columns // 2, columns - columns // 2, wrap=False, periodic_inside=False)

    @property
    def is_identity(self) -> bool:
        return not (self.south or self.north or self.west or self.east)

    def padded_shape(self, height: int, width: int) -> tuple[int, int]:
        return height + self.south + self.north, width + self.west + self.east

    def pad(self, x: Tensor) -> Tensor:
        """``(…, H, W)`` → ``(…, H + south + north, W + west + east)``."""
        if self.west or self.east:
            if self.wrap:
                x = torch.cat([x[..., x.shape[-1] - self.west:], x, x[..., : self.east]], dim=-1)
            else:
                x = torch.cat([x[..., :1].expand(*x.shape[:-1], self.west), x,
                               x[..., -1:].expand(*x.shape[:-1], self.east)], dim=-1)
        if self.south or self.north:
            x = torch.cat([x[..., :1, :].expand(*x.shape[:-2], self.south, x.shape[-1]), x,
                           x[..., -1:, :].expand(*x.shape[:-2], self.north, x.shape[-1])], dim=-2)
        return x

    def crop(self, x: Tensor) -> Tensor:
        """Undo :meth:`pad`."""
        h, w = x.shape[-2:]
        return x[..., self.south : h - self.north, self.west : w - self.east]

    def to_json(self) -> dict[str, int | bool]:
        return {"south": self.south, "north": self.north, "west": self.west, "east": self.east,
                "wrap": self.wrap, "periodic_inside": self.periodic_inside}


__all__ = ["GridPadding"]
