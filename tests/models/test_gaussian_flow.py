"""Gaussian → Gaussian: the exact optimal network is known, so sampler error is pure discretisation error.

With an affine velocity field every sampler's flow map is affine, ``x ↦ M·x + c``, so the pushed-forward
mean and covariance of ``N(0, I)`` are exactly ``c`` and ``M·Mᵀ`` (no Monte Carlo noise): we propagate the
origin and the basis vectors.
"""

from __future__ import annotations

import pytest
import torch

from models.objectives import make_objective
from models.samplers import SAMPLERS, Denoiser, make_sampler, sample, time_grid
from models.toy import GaussianOracle

MU = torch.tensor([1.0, -2.0], dtype=torch.float64)
_L = torch.tensor([[1.0, 0.0], [0.8, 0.5]], dtype=torch.float64)
COV = _L @ _L.T

pytestmark = pytest.mark.usefixtures("single_thread")


def pushed_moments(objective: str, sampler: str, steps: int, *, grid: str = "uniform", flip: bool = False):
    obj = make_objective(objective)
    den = Denoiser(GaussianOracle(MU, COV, obj, flip=flip), obj)
    pts = torch.cat([torch.zeros(1, 2), torch.eye(2)]).double()
    opts = {"s_churn": 0.0} if sampler == "churn" else {}
    out = sample(den, pts, sampler=make_sampler(sampler, **opts), steps=steps, grid=grid).samples
    c = out[0]
    m = (out[1:] - c).T
    return c, m @ m.T


def rel_error(objective: str, sampler: str, steps: int, **kw) -> float:
    mean, cov = pushed_moments(objective, sampler, steps, **kw)
    return max(
        float((mean - MU).abs().max() / MU.abs().max()), float((cov - COV).abs().max() / COV.abs().max())
    )


def test_heun_20_steps_recovers_target_moments_within_1_percent() -> None:
    """Integrating the exact flow-matching field with Heun at 20 steps gives mean and covariance within 1%."""
    mean, cov = pushed_moments("fm", "heun", 20)
    assert torch.allclose(mean, MU, rtol=0.01, atol=0.01 * float(MU.abs().max()))
    assert float((cov - COV).abs().max() / COV.abs().max()) < 0.01


@pytest.mark.parametrize(("sampler", "order"), [("euler", 1), ("heun", 2)])
def test_doubling_steps_divides_error_by_two_to_the_order(sampler: str, order: int) -> None:
    """Euler's error halves and Heun's quarters when the step count doubles (first vs second order)."""
    errors = [rel_error("fm", sampler, n) for n in (20, 40, 80)]
    for coarse, fine in zip(errors, errors[1:]):
        assert coarse / fine == pytest.approx(2.0**order, rel=0.15)


def test_flipped_velocity_sign_is_caught() -> None:
    """The same moment check fails by far for a network whose velocity has the wrong sign."""
    assert rel_error("fm", "heun", 20) < 0.01
    assert rel_error("fm", "heun", 20, flip=True) > 0.5


def test_wrong_target_is_caught() -> None:
    """An eps-optimal network read as a v-prediction (a wrong target) lands far from the target."""
    obj_eps = make_objective("eps-cosine")
    obj_v = make_objective("v-cosine")
    den = Denoiser(GaussianOracle(MU, COV, obj_eps), obj_v)
    pts = torch.cat([torch.zeros(1, 2), torch.eye(2)]).double()
    out = sample(den, pts, sampler="heun", steps=40, grid="karras").samples
    assert float((out[0] - MU).abs().max()) > 0.5


@pytest.mark.parametrize("objective", ["fm", "eps-cosine", "v-sigmoid", "x0-linear_beta", "edm"])
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_with_every_objective_recovers_moments(objective: str, sampler: str) -> None:
    """The exact optimal output of each objective, converted to a velocity / data prediction, brings every
    sampler to the target moments at 40 steps (uniform grid for flow matching, EDM's ρ-spaced grid for the
    diffusion paths, whose σmax = 80 start costs ≈0.7%); Euler is first order, hence its looser bound."""
    tol = 0.08 if sampler == "euler" else 0.015
    grid = "uniform" if objective == "fm" else "karras"
    assert rel_error(objective, sampler, 40, grid=grid) < tol


def test_churn_with_noise_still_samples_the_target() -> None:
    """EDM stochastic churn (S_churn = 40) keeps the right marginal: Monte Carlo moments within 4%."""
    obj = make_objective("fm")
    den = Denoiser(GaussianOracle(MU, COV, obj), obj)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(40000, 2, generator=gen, dtype=torch.float64)
    x = sample(
        den, noise, sampler=make_sampler("churn", s_churn=40.0), steps=40, grid="karras", generator=gen
    ).samples
    assert float((x.mean(0) - MU).abs().max()) < 0.04
    assert float((torch.cov(x.T) - COV).abs().max()) < 0.04


def test_churn_without_churn_is_heun() -> None:
    """S_churn = 0 reduces the EDM stochastic sampler to Heun exactly."""
    obj = make_objective("fm")
    den = Denoiser(GaussianOracle(MU, COV, obj), obj)
    x = torch.randn(8, 2, dtype=torch.float64)
    grid = time_grid(obj.path, 10)
    a = make_sampler("churn", s_churn=0.0)(den, x, grid).samples
    b = make_sampler("heun")(den, x, grid).samples
    assert torch.equal(a, b)
