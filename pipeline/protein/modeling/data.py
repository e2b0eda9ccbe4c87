"""Conformations as vectors for flow matching.

Rotations and translations are removed by superposition, not learned: every frame is Kabsch-aligned
(all atoms) to a reference, the mean aligned structure (two alignment passes: first frame, then the
mean). Coordinates are then standardised per Cartesian component, ``z = (x - μ) / σ`` with ``μ`` the mean
structure and ``σ`` the per-atom, per-axis std over the training frames, and flattened to ``3N``. The
prior is ``N(0, I)`` in ``z`` — an anisotropic Gaussian around the mean structure in the reference frame —
so samples come out already aligned; there is no centre-of-mass or rotation degree of freedom left.

Time-lagged pairs ``(x(t), x(t+τ))`` are taken within each trajectory only (never across boundaries).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.protein.geometry import kabsch_align
from pipeline.protein.store import StructureStore


@dataclass(frozen=True)
class Standardiser:
    """Reference frame and per-component scaling of an atom set."""

    reference: np.ndarray  # (N, 3) nm: the frame everything is aligned to (the mean structure)
    mean: np.ndarray  # (N, 3)
    std: np.ndarray  # (N, 3)

    @classmethod
    def fit(cls, frames: np.ndarray) -> tuple[Standardiser, np.ndarray]:
        """Align ``frames`` (F, N, 3) in two passes and fit the scaling; returns it and the aligned frames."""
        aligned = kabsch_align(frames, frames[0])
        reference = aligned.mean(axis=0)
        aligned = kabsch_align(frames, reference)
        mean = aligned.mean(axis=0)
        std = np.maximum(aligned.std(axis=0), 1e-4)
        return cls(
            reference=mean.astype(np.float64), mean=mean.astype(np.float64), std=std.astype(np.float64)
        ), aligned

    def align(self, frames: np.ndarray) -> np.ndarray:
        return kabsch_align(frames, self.reference)

    def encode(self, aligned: np.ndarray) -> np.ndarray:
        """(…, N, 3) aligned nm → (…, 3N) standardised float32."""
        z = (aligned - self.mean) / self.std
        return z.reshape(*z.shape[:-2], -1).astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(…, 3N) → (…, N, 3) nm in the reference frame."""
        x = np.asarray(z, dtype=np.float64).reshape(*np.shape(z)[:-1], -1, 3)
        return (x * self.std + self.mean).astype(np.float32)

    def to_json(self) -> dict:
        return {k: np.asarray(getattr(self, k)).round(7).tolist() for k in ("reference", "mean", "std")}

    @classmethod
    def from_json(cls, data: dict) -> Standardiser:
        return cls(**{k: np.asarray(data[k], dtype=np.float64) for k in ("reference", "mean", "std")})


def trajectory_bounds(store: StructureStore) -> list[tuple[int, int]]:
    """``[(start, stop), …]`` frame ranges of the store's trajectories."""
    total = int(store.coordinates.shape[-3]) if len(store.coordinates.shape) == 3 else 0
    starts = [int(s) for s in store.trajectory_start] + [total]
    return [(a, b) for a, b in zip(starts[:-1], starts[1:]) if b > a]


def lagged_pairs(bounds: list[tuple[int, int]], lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, i + lag)`` inside each trajectory."""
    if lag < 1:
        raise ValueError("the lag must be at least one frame")
    first = [np.arange(a, b - lag) for a, b in bounds if b - a > lag]
    if not first:
        raise ValueError(f"no trajectory is longer than the lag ({lag} frames)")
    i = np.concatenate(first)
    return i, i + lag
