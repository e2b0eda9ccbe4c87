"""Probability paths (noise schedules) in the package's time convention.

Every path writes the noisy state as ``x_t = a(t)·x1 + b(t)·x0`` with ``x0 ~ N(0, I)`` noise, ``x1`` data,
``t ∈ [0, 1]``, t = 0 noise and t = 1 data. ``a, b`` and their time derivatives ``da, db`` come from
:meth:`Path.coefficients`. Derived quantities:

* ``logsnr(t) = 2·log(a/b)`` (increasing in t),
* ``sigma(t) = b/a`` — the EDM / variance-exploding noise level, ``x_t = a·(x1 + sigma·x0)``.

Paths:

* ``linear`` — flow matching: ``a = t, b = 1 - t`` (target velocity ``x1 - x0``).
* ``linear_beta``, ``cosine``, ``sigmoid`` — variance-preserving diffusion schedules (``a² + b² = 1``)
  with diffusion time ``s = 1 - t``; defined through the log-SNR ``λ(t)``, clipped to
  ``[-logsnr_clip, logsnr_clip]`` so ``a`` and ``b`` never vanish.
* ``edm`` — Karras et al. (2022): ``sigma(t) = (σmax^(1/ρ) + t·(σmin^(1/ρ) - σmax^(1/ρ)))^ρ`` scaled to
  variance preserving, ``a = 1/sqrt(1 + σ²)``, ``b = σ/sqrt(1 + σ²)``; uniform steps in t are EDM's
  ρ-spaced noise levels.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from models.choices import choose

PathName = Literal["linear", "linear_beta", "cosine", "sigmoid", "edm"]


@dataclass(frozen=True)
class PathCoefficients:
    """``x_t = a·x1 + b·x0`` and ``dx_t/dt = da·x1 + db·x0`` at a time tensor ``t``."""

    a: Tensor
    b: Tensor
    da: Tensor
    db: Tensor


class Path(ABC):
    """A Gaussian probability path ``x_t = a(t)·x1 + b(t)·x0`` on ``t ∈ [0, 1]``."""

    name: str
    variance_preserving: bool = True

    @abstractmethod
    def coefficients(self, t: Tensor) -> PathCoefficients:
        """``a, b, da/dt, db/dt`` at ``t`` (same shape as ``t``)."""

    def logsnr(self, t: Tensor) -> Tensor:
        """``2·log(a/b)``; ``-inf`` where ``a = 0`` and ``+inf`` where ``b = 0``."""
        c = self.coefficients(t)
        return 2.0 * (torch.log(c.a) - torch.log(c.b))

    def sigma(self, t: Tensor) -> Tensor:
        """EDM noise level ``b/a`` (``inf`` where ``a = 0``)."""
        c = self.coefficients(t)
        return c.b / c.a

    def t_from_logsnr(self, logsnr: Tensor) -> Tensor:
        """Inverse of :meth:`logsnr` (bisection; paths override with closed forms)."""
        lo = torch.zeros_like(logsnr)
        hi = torch.ones_like(logsnr)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self.logsnr(mid) < logsnr
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        """Inverse of :meth:`sigma`."""
        return self.t_from_logsnr(-2.0 * torch.log(sigma))

    def sample_xt(self, x1: Tensor, x0: Tensor, t: Tensor) -> Tensor:
        """``x_t = a(t)·x1 + b(t)·x0`` with ``t`` of shape ``[B]``."""
        c = self.coefficients(t)
        return bcast(c.a, x1) * x1 + bcast(c.b, x1) * x0


def bcast(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-sample ``[B]`` (or scalar) tensor to broadcast against ``like`` ``[B, ...]``."""
    if v.dim() == 0:
        return v
    return v.reshape(v.shape[0], *([1] * (like.dim() - 1)))


class LinearPath(Path):
    """Flow matching / rectified flow: ``a = t, b = 1 - t``."""

    name = "linear"
    variance_preserving = False

    def coefficients(self, t: Tensor) -> PathCoefficients:
        one = torch.ones_like(t)
        return PathCoefficients(a=t, b=1.0 - t, da=one, db=-one)

    def t_from_logsnr(self, logsnr: Tensor) -> Tensor:
        return torch.sigmoid(0.5 * logsnr)

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        return 1.0 / (1.0 + sigma)


class VPPath(Path):
    """Variance-preserving path defined by its log-SNR ``λ(t)``: ``a² = sigmoid(λ)``, ``b² = sigmoid(-λ)``."""

    variance_preserving = True

    def __init__(self, *, logsnr_clip: float = 15.0) -> None:
        self.logsnr_clip = float(logsnr_clip)

    @abstractmethod
    def _raw_logsnr(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Unclipped ``λ(t)`` and ``dλ/dt``."""

    def _logsnr_and_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        lam, dlam = self._raw_logsnr(t)
        clipped = (lam > self.logsnr_clip) | (lam < -self.logsnr_clip)
        lam = lam.clamp(-self.logsnr_clip, self.logsnr_clip)
        dlam = torch.where(clipped | ~torch.isfinite(dlam), torch.zeros_like(dlam), dlam)
        return lam, dlam

    def coefficients(self, t: Tensor) -> PathCoefficients:
        lam, dlam = self._logsnr_and_derivative(t)
        a = torch.sigmoid(lam).sqrt()
        b = torch.sigmoid(-lam).sqrt()
        return PathCoefficients(a=a, b=b, da=0.5 * a * b * b * dlam, db=-0.5 * b * a * a * dlam)

    def logsnr(self, t: Tensor) -> Tensor:
        return self._logsnr_and_derivative(t)[0]


class LinearBetaPath(VPPath):
    """DDPM's linear β(s) from ``beta_min`` to ``beta_max`` (continuous VP-SDE), diffusion time ``s = 1 - t``.

    ``log ᾱ(s) = -(β0·s + ½(β1 - β0)·s²)``, ``λ = -log(expm1(-log ᾱ))``.
    """

    name = "linear_beta"

    def __init__(self, *, beta_min: float = 0.1, beta_max: float = 20.0, logsnr_clip: float = 15.0) -> None:
        super().__init__(logsnr_clip=logsnr_clip)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def _raw_logsnr(self, t: Tensor) -> tuple[Tensor, Tensor]:
        s = 1.0 - t
        big_b = self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s * s
        dbig_b_ds = self.beta_min + (self.beta_max - self.beta_min) * s
        em1 = torch.expm1(big_b)
        lam = -torch.log(em1)
        dlam_ds = -dbig_b_ds * torch.exp(big_b) / em1
        return lam, -dlam_ds


class CosinePath(VPPath):
    """Cosine schedule (Nichol & Dhariwal 2021): ``ᾱ(s) = cos²(π s/2)``, i.e. ``λ = -2·log tan(π s/2)``,
    with ``s`` affinely squeezed so ``λ`` spans exactly ``[-logsnr_clip, logsnr_clip]``."""

    name = "cosine"

    def _raw_logsnr(self, t: Tensor) -> tuple[Tensor, Tensor]:
        s = 1.0 - t
        b0 = math.atan(math.exp(-0.5 * self.logsnr_clip))
        scale = math.atan(math.exp(0.5 * self.logsnr_clip)) - b0
        u = scale * s + b0
        lam = -2.0 * torch.log(torch.tan(u))
        dlam_ds = -4.0 * scale / torch.sin(2.0 * u)
        return lam, -dlam_ds


class SigmoidPath(VPPath):
    """Sigmoid schedule (Jabri et al. 2022; Chen 2023): ``ᾱ(s) = (v(1) - v(s)) / (v(1) - v(0))`` with
    ``v(s) = sigmoid((s·(end - start) + start)/τ)``."""

    name = "sigmoid"

    def __init__(
        self, *, start: float = -3.0, end: float = 3.0, tau: float = 1.0, logsnr_clip: float = 15.0
    ) -> None:
        super().__init__(logsnr_clip=logsnr_clip)
        self.start, self.end, self.tau = float(start), float(end), float(tau)

    def _raw_logsnr(self, t: Tensor) -> tuple[Tensor, Tensor]:
        s = 1.0 - t
        v_start = 1.0 / (1.0 + math.exp(-self.start / self.tau))
        v_end = 1.0 / (1.0 + math.exp(-self.end / self.tau))
        v = torch.sigmoid((s * (self.end - self.start) + self.start) / self.tau)
        abar = ((v_end - v) / (v_end - v_start)).clamp(1e-30, 1.0)
        dabar_ds = -v * (1.0 - v) * (self.end - self.start) / self.tau / (v_end - v_start)
        lam = torch.log(abar) - torch.log1p(-abar)
        dlam_ds = dabar_ds / (abar * (1.0 - abar))
        return lam, -dlam_ds


class EDMPath(VPPath):
    """Karras et al. (2022) noise levels, ρ-spaced in t, scaled to variance preserving.

    ``σ(t) = (σmax^(1/ρ) + t·(σmin^(1/ρ) - σmax^(1/ρ)))^ρ``, ``a = 1/sqrt(1+σ²)``, ``b = σ·a``.
    ``sigma_data`` is used by the EDM preconditioning of :mod:`models.objectives`.
    """

    name = "edm"

    def __init__(
        self, *, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, sigma_data: float = 1.0
    ) -> None:
        super().__init__(logsnr_clip=float("inf"))
        self.sigma_min, self.sigma_max, self.rho = float(sigma_min), float(sigma_max), float(rho)
        self.sigma_data = float(sigma_data)

    def _sigma_and_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        lo, hi = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        base = hi + t.clamp(0.0, 1.0) * (lo - hi)
        return base**self.rho, self.rho * base ** (self.rho - 1) * (lo - hi)

    def _raw_logsnr(self, t: Tensor) -> tuple[Tensor, Tensor]:
        sigma, dsigma = self._sigma_and_derivative(t)
        return -2.0 * torch.log(sigma), -2.0 * dsigma / sigma

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        lo, hi = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        return ((sigma.clamp(self.sigma_min, self.sigma_max) ** (1 / self.rho) - hi) / (lo - hi)).clamp(0, 1)

    def t_from_logsnr(self, logsnr: Tensor) -> Tensor:
        return self.t_from_sigma(torch.exp(-0.5 * logsnr))


PATHS: dict[str, type[Path]] = {
    "linear": LinearPath,
    "linear_beta": LinearBetaPath,
    "cosine": CosinePath,
    "sigmoid": SigmoidPath,
    "edm": EDMPath,
}


def make_path(name: PathName, **options: float) -> Path:
    """Build a path by name (``linear``, ``linear_beta``, ``cosine``, ``sigmoid``, ``edm``)."""
    return choose(PATHS, name, what="path", **options)
