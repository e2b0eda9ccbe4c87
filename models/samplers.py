"""ODE / SDE samplers with one signature, integrating t: 0 (noise) → 1 (data).

Every sampler is called as ``sampler(model, x, grid, *, generator=None, keep_intermediates=False)`` where
``model`` is a :class:`Denoiser` (network + objective + condition + guidance), ``x`` the state at
``grid[0]`` (batch dim = ensemble members) and ``grid`` an increasing 1-D tensor of times ending at 1.
Any grid works whatever the training (continuous time); build one with :func:`time_grid`.

* ``euler`` — 1 network call per step, first order.
* ``heun`` — 2 calls per step, second order (trapezoidal predictor-corrector).
* ``midpoint`` — 2 calls per step, second order.
* ``dpmpp_2s`` — DPM-Solver++(2S) (Lu et al. 2022), data-prediction form; intermediate point at the
  midpoint of ``λ = log(a/b)`` (the midpoint in t where an end has ``a = 0`` or ``b = 0``); each
  sub-step is the exact exponential-integrator step ``x' = (b'/b)·(x - a·D) + a'·D``. 2 calls per step.
* ``churn`` — EDM stochastic sampler (Karras et al. 2022, Alg. 2): before each step, where
  ``s_tmin ≤ σ ≤ s_tmax`` (σ = b/a), raise σ by ``γ = min(s_churn/N, √2-1)`` with fresh noise scaled by
  ``s_noise``, then a Heun step in t. With ``s_churn = 0`` it is ``heun``.

NFE = number of network calls. With classifier-free guidance the conditional and unconditional passes
share ONE batched call, counted as one network call (the batch is twice as large).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from models.choices import choose
from models.guidance import Condition
from models.objectives import Network, Objective, Prediction
from models.paths import Path

GridKind = Literal["auto", "uniform", "karras"]

#: The largest noise level of the ``auto`` grid on variance-preserving / EDM paths. Their σ(0) is huge
#: (1e2–1e4); EDM-trained networks have seen σ ≤ ~20 with any real weight, and starting there costs nothing.
AUTO_SIGMA_MAX = 20.0


class Denoiser:
    """The model as the samplers see it: ``model(x, t) -> Prediction`` with a network-call counter.

    ``guidance=None`` runs the network on ``condition`` only; a float ``w`` runs conditional and
    unconditional passes in one batch and returns ``out_u + w·(out_c - out_u)``.
    """

    def __init__(
        self,
        net: Network,
        objective: Objective,
        *,
        condition: Condition = None,
        guidance: float | None = None,
    ) -> None:
        self.net = net
        self.objective = objective
        self.condition = condition
        self.guidance = guidance
        self.nfe = 0

    @property
    def path(self) -> Path:
        return self.objective.path

    def __call__(self, x: Tensor, t: Tensor | float) -> Prediction:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        self.nfe += 1
        return self.objective.predict(self.net, x, t, self.condition, guidance=self.guidance)


@dataclass(frozen=True)
class SampleResult:
    """``samples`` at t = 1; ``intermediates`` ``[len(grid), B, ...]`` (states at every grid time, the
    first being the input) when asked for; ``nfe`` network calls; the ``grid`` used."""

    samples: Tensor
    nfe: int
    grid: Tensor
    intermediates: Tensor | None = None


def _coeff(path: Path, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    k = path.coefficients(t.to(like.dtype).reshape(1))
    return k.a[0], k.b[0]


class _Base:
    """Shared loop: ``_step(model, x, t0, t1, i, n, generator) -> x_next``."""

    def __call__(
        self,
        model: Denoiser,
        x: Tensor,
        grid: Tensor,
        *,
        generator: torch.Generator | None = None,
        keep_intermediates: bool = False,
    ) -> SampleResult:
        grid = grid.to(device=x.device, dtype=x.dtype)
        start = model.nfe
        states = [x] if keep_intermediates else None
        n = len(grid) - 1
        for i in range(n):
            x = self._step(model, x, grid[i], grid[i + 1], i, n, generator)
            if states is not None:
                states.append(x)
        inter = torch.stack(states) if states is not None else None
        return SampleResult(samples=x, nfe=model.nfe - start, grid=grid, intermediates=inter)

    def _step(self, model, x, t0, t1, i, n, generator):  # type: ignore[no-untyped-def]
        raise NotImplementedError


@dataclass(frozen=True)
class Euler(_Base):
    """Explicit Euler on ``dx/dt = v(x, t)``."""

    def _step(self, model, x, t0, t1, i, n, generator):  # type: ignore[no-untyped-def]
        return x + (t1 - t0) * model(x, t0).velocity


@dataclass(frozen=True)
class Heun(_Base):
    """Heun's method (explicit trapezoid)."""

    def _step(self, model, x, t0, t1, i, n, generator):  # type: ignore[no-untyped-def]
        h = t1 - t0
        v0 = model(x, t0).velocity
        v1 = model(x + h * v0, t1).velocity
        return x + 0.5 * h * (v0 + v1)


@dataclass(frozen=True)
class Midpoint(_Base):
    """Explicit midpoint method."""

    def _step(self, model, x, t0, t1, i, n, generator):  # type: ignore[no-untyped-def]
        h = t1 - t0
        v0 = model(x, t0).velocity
        return x + h * model(x + 0.5 * h * v0, t0 + 0.5 * h).velocity


@dataclass(frozen=True)
class DPMpp2S(_Base):
    """DPM-Solver++(2S), data prediction, midpoint in ``λ = log(a/b)``."""

    def _step(self, model, x, t0, t1, i, n, generator):  # type: ignore[no-untyped-def]
        path = model.path
        lam0, lam1 = (path.logsnr(t.reshape(1))[0] for t in (t0, t1))
        if torch.isfinite(lam0) and torch.isfinite(lam1):
            ts = path.t_from_logsnr((0.5 * (lam0 + lam1)).reshape(1))[0]
        else:
            ts = 0.5 * (t0 + t1)
        a0, b0 = _coeff(path, t0, x)
        as_, bs = _coeff(path, ts, x)
        a1, b1 = _coeff(path, t1, x)
        d0 = model(x, t0).x1
        u = (bs / b0) * (x - a0 * d0) + as_ * d0
        ds = model(u, ts).x1
        return (b1 / b0) * (x - a0 * ds) + a1 * ds


@dataclass(frozen=True)
class Churn(_Base):
    """EDM stochastic sampler (Alg. 2): churn noise then a Heun step in t."""

    s_churn: float = 40.0
    s_tmin: float = 0.05
    s_tmax: float = 50.0
    s_noise: float = 1.003

    def _step(self, model, x, t0, t1, i, n, generator):  # type: ignore[no-untyped-def]
        path = model.path
        a0, b0 = _coeff(path, t0, x)
        sigma = float(b0 / a0) if float(a0) > 0 else math.inf
        gamma = min(self.s_churn / n, math.sqrt(2.0) - 1.0) if self.s_tmin <= sigma <= self.s_tmax else 0.0
        t_hat = t0
        if gamma > 0:
            sigma_hat = sigma * (1.0 + gamma)
            t_hat = path.t_from_sigma(torch.tensor([sigma_hat], dtype=x.dtype, device=x.device))[0]
            a_hat, _ = _coeff(path, t_hat, x)
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = (a_hat / a0) * x + a_hat * math.sqrt(sigma_hat**2 - sigma**2) * self.s_noise * eps
        h = t1 - t_hat
        v0 = model(x, t_hat).velocity
        v1 = model(x + h * v0, t1).velocity
        return x + 0.5 * h * (v0 + v1)


SAMPLERS: dict[str, type[_Base]] = {
    "euler": Euler,
    "heun": Heun,
    "midpoint": Midpoint,
    "dpmpp_2s": DPMpp2S,
    "churn": Churn,
}

#: Network calls per step (with ``churn`` as ``heun``).
CALLS_PER_STEP: dict[str, int] = {"euler": 1, "heun": 2, "midpoint": 2, "dpmpp_2s": 2, "churn": 2}


def make_sampler(name: str, **options: float) -> _Base:
    """A sampler by name (``euler``, ``heun``, ``midpoint``, ``dpmpp_2s``, ``churn``); options go to churn."""
    return choose(SAMPLERS, name, what="sampler", **options)


def time_grid(path: Path, steps: int, *, kind: GridKind = "auto", rho: float = 7.0, sigma_min: float = 0.002,
              sigma_max: float = 80.0, dtype: torch.dtype = torch.float64) -> Tensor:
    """``steps + 1`` increasing times ending at 1.

    ``auto``: each path's customary grid — ``uniform`` on the linear (flow-matching) path, ``karras`` with
    ``σmax = min(sigma_max, AUTO_SIGMA_MAX)`` on the others.
    ``uniform``: ``linspace(0, 1)``. ``karras``: EDM's ρ-spaced noise levels
    ``σ_i = (σmax^(1/ρ) + i/(N-1)·(σmin^(1/ρ) - σmax^(1/ρ)))^ρ`` in σ = b/a (clipped to the path's range),
    mapped to t, followed by t = 1.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if kind == "auto":
        linear = path.name == "linear"
        kind, sigma_max = ("uniform", sigma_max) if linear else ("karras", min(sigma_max, AUTO_SIGMA_MAX))
    if kind == "uniform":
        return torch.linspace(0.0, 1.0, steps + 1, dtype=dtype)
    if kind != "karras":
        raise ValueError(f"unknown grid kind {kind!r}; choose 'auto', 'uniform' or 'karras'")
    ends = path.sigma(torch.tensor([0.0, 1.0], dtype=dtype))
    s_max = min(float(ends[0]), sigma_max)
    s_end = float(ends[1])
    s_min = max(s_end, sigma_min)
    # EDM: N levels σmax..σmin then σ = 0 (t = 1); when the path's σ(1) is above σmin, end on σ(1) itself.
    count = steps if s_end < sigma_min else steps + 1
    if count == 1:
        sigmas = torch.tensor([s_max], dtype=dtype)
    else:
        ramp = torch.linspace(0.0, 1.0, count, dtype=dtype)
        sigmas = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    ts = path.t_from_sigma(sigmas)
    if count == steps:
        ts = torch.cat([ts, torch.ones(1, dtype=dtype)])
    else:
        ts[-1] = 1.0
    return ts


def sample(
    model: Denoiser,
    noise: Tensor,
    *,
    sampler: str | _Base = "heun",
    steps: int = 32,
    grid: GridKind | Tensor = "auto",
    generator: torch.Generator | None = None,
    keep_intermediates: bool = False,
) -> SampleResult:
    """Draw samples: start at ``x = b(t_0)·noise`` (exact when ``a(t_0) = 0``) and integrate to t = 1.

    ``noise`` is ``N(0, I)`` of the sample shape ``[members, ...]``.
    """
    fn = make_sampler(sampler) if isinstance(sampler, str) else sampler
    ts = time_grid(model.path, steps, kind=grid) if isinstance(grid, str) else grid
    b0 = model.path.coefficients(ts[:1].to(noise.dtype)).b[0]
    return fn(model, b0 * noise, ts, generator=generator, keep_intermediates=keep_intermediates)


__all__ = [
    "CALLS_PER_STEP",
    "SAMPLERS",
    "Churn",
    "DPMpp2S",
    "Denoiser",
    "Euler",
    "Heun",
    "Midpoint",
    "SampleResult",
    "make_sampler",
    "sample",
    "time_grid",
]
