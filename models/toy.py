"""Toy problems with known answers: a 2-D mixture of 8 Gaussians, and Gaussian → Gaussian whose optimal
network output is closed-form for every objective.

Gaussian → Gaussian: ``x0 ~ N(0, I)``, ``x1 ~ N(μ, Σ)`` independent, ``x_t = a·x1 + b·x0`` is
``N(a·μ, S)`` with ``S = a²Σ + b²I``, and the posterior means are
``E[x1 | x_t] = μ + aΣS⁻¹(x_t - aμ)``, ``E[x0 | x_t] = bS⁻¹(x_t - aμ)``.
The MSE-optimal output of an objective with target ``c·x1 + d·x0`` is ``c·E[x1|x_t] + d·E[x0|x_t]``;
for flow matching that is the marginal velocity field, whose flow carries ``N(0, I)`` to ``N(μ, Σ)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.guidance import Condition
from models.objectives import Objective
from models.paths import bcast
from models.randomness import Stream, Streams
from models.training.data import Batch


class GaussianOracle(nn.Module):
    """Exact optimal network for ``objective`` when the data are ``N(mu, cov)``: ``net(x_in, t_in, cond)``.

    ``flip=True`` negates the output (a deliberately wrong field, to show tests discriminate).
    """

    def __init__(self, mu: Tensor, cov: Tensor, objective: Objective, *, flip: bool = False) -> None:
        super().__init__()
        self.register_buffer("mu", mu.double())
        self.register_buffer("cov", cov.double())
        evals, evecs = torch.linalg.eigh(self.cov)
        self.register_buffer("evals", evals)
        self.register_buffer("evecs", evecs)
        self.objective = objective
        self.flip = flip

    def forward(self, x_in: Tensor, t_in: Tensor, condition: Condition = None) -> Tensor:
        obj = self.objective
        x_in64, t_in64 = x_in.double(), t_in.double()
        if obj.prediction == "edm":  # undo the EDM input preconditioning: t_in = c_noise, x_in = c_in·x/a
            t = obj.path.t_from_sigma(torch.exp(4.0 * t_in64))
            _, _, c_in, _ = obj.edm_preconditioning(t)
            x = x_in64 * bcast(obj.path.coefficients(t).a / c_in, x_in64)
        else:
            t, x = t_in64, x_in64
        k = obj.path.coefficients(t)
        # S⁻¹(x - aμ) with S = a²Σ + b²I = Q·diag(a²λ + b²)·Qᵀ
        scale = k.a[:, None] ** 2 * self.evals + k.b[:, None] ** 2
        r = (((x - k.a[:, None] * self.mu) @ self.evecs) / scale) @ self.evecs.T
        ex1 = self.mu + k.a[:, None] * (r @ self.cov.T)
        ex0 = k.b[:, None] * r
        c, d = obj.target_coefficients(t)
        out = c[:, None] * ex1 + d[:, None] * ex0
        return (-out if self.flip else out).to(x_in.dtype)


# -- 8 Gaussians ----------------------------------------------------------------------------------------

RADIUS = 2.0
STD = 0.2


def eight_centers(radius: float = RADIUS) -> Tensor:
    """The 8 mode centres on a circle, ``[8, 2]``."""
    angle = torch.arange(8, dtype=torch.float32) * (2 * math.pi / 8)
    return radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)


def eight_gaussians(
    n: int, *, generator: torch.Generator | None = None, radius: float = RADIUS, std: float = STD
) -> tuple[Tensor, Tensor]:
    """``n`` samples of the equal-weight mixture and their component labels."""
    labels = torch.randint(0, 8, (n,), generator=generator)
    x = eight_centers(radius)[labels] + std * torch.randn(n, 2, generator=generator)
    return x, labels


def mixture_weights(samples: Tensor, *, radius: float = RADIUS) -> Tensor:
    """Fraction of samples nearest to each of the 8 centres, ``[8]``."""
    nearest = torch.cdist(samples.float(), eight_centers(radius)).argmin(dim=1)
    return torch.bincount(nearest, minlength=8).float() / samples.shape[0]


def sliced_wasserstein(
    x: Tensor, y: Tensor, *, projections: int = 256, generator: torch.Generator | None = None
) -> float:
    """Sliced 2-Wasserstein distance ``sqrt(mean_θ W2²(θ·x, θ·y))`` between equal-size point sets."""
    if x.shape != y.shape:
        raise ValueError("sliced_wasserstein needs equal-size sets")
    theta = torch.randn(x.shape[1], projections, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px = torch.sort(x.double() @ theta, dim=0).values
    py = torch.sort(y.double() @ theta, dim=0).values
    return float(((px - py) ** 2).mean().sqrt())


class EightGaussiansSource:
    """Training batches of the mixture from the ``data`` stream of ``seed`` at ``step``; ``conditional=True``
    adds the one-hot component as the condition. Each rank gets its slice of the global batch."""

    def __init__(self, *, batch_size: int, seed: int = 0, conditional: bool = False) -> None:
        self.batch_size, self.seed, self.conditional = batch_size, seed, conditional

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> Batch:
        gen = Streams(self.seed).generator(Stream.DATA, step)
        x, labels = eight_gaussians(self.batch_size, generator=gen)
        per = self.batch_size // world_size
        sl = slice(rank * per, (rank + 1) * per)
        cond = nn.functional.one_hot(labels, 8).float()[sl] if self.conditional else None
        return Batch(x1=x[sl], condition=cond)
