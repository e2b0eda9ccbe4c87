"""Training-time distributions over t ∈ [0, 1] (t = 0 noise, t = 1 data).

* ``uniform``: ``t ~ U(t_min, t_max)``.
* ``logit_normal``: ``t = sigmoid(n)``, ``n ~ N(mean, std²)`` (Esser et al. 2024).
* ``edm_lognormal``: ``log σ ~ N(p_mean, p_std²)`` (Karras et al. 2022), mapped to t by the path's
  ``t_from_sigma`` (σ = b/a).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from models.choices import choose
from models.paths import Path

TimeSamplingName = Literal["uniform", "logit_normal", "edm_lognormal"]


class TimeSampler(Protocol):
    """Draws ``n`` training times in ``[0, 1]`` for ``path``."""

    def __call__(
        self,
        n: int,
        *,
        path: Path,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Tensor: ...


@dataclass(frozen=True)
class Uniform:
    """``t ~ U(t_min, t_max)``."""

    t_min: float = 0.0
    t_max: float = 1.0

    def __call__(self, n, *, path, generator=None, device="cpu"):  # type: ignore[no-untyped-def]
        u = torch.rand(n, generator=generator, device=device)
        return self.t_min + (self.t_max - self.t_min) * u


@dataclass(frozen=True)
class LogitNormal:
    """``t = sigmoid(N(mean, std²))``."""

    mean: float = 0.0
    std: float = 1.0

    def __call__(self, n, *, path, generator=None, device="cpu"):  # type: ignore[no-untyped-def]
        return torch.sigmoid(self.mean + self.std * torch.randn(n, generator=generator, device=device))


@dataclass(frozen=True)
class EDMLogNormal:
    """``log σ ~ N(p_mean, p_std²)``, ``t = path.t_from_sigma(σ)``."""

    p_mean: float = -1.2
    p_std: float = 1.2

    def __call__(self, n, *, path, generator=None, device="cpu"):  # type: ignore[no-untyped-def]
        sigma = torch.exp(self.p_mean + self.p_std * torch.randn(n, generator=generator, device=device))
        return path.t_from_sigma(sigma).clamp(0.0, 1.0)


TIME_SAMPLERS: dict[str, type] = {
    "uniform": Uniform,
    "logit_normal": LogitNormal,
    "edm_lognormal": EDMLogNormal,
}


def make_time_sampler(name: TimeSamplingName, **options: float) -> TimeSampler:
    """Build a time sampler by name."""
    return choose(TIME_SAMPLERS, name, what="time sampling", **options)
