"""Paths and training-time distributions: coefficients, derivatives, inverses, endpoints."""

from __future__ import annotations

import pytest
import torch

from models.paths import PATHS, make_path
from models.timesampling import make_time_sampler

T = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("name", sorted(PATHS))
def test_path_derivatives_match_finite_differences(name: str) -> None:
    """da/dt and db/dt agree with central differences of a(t), b(t) (a wrong derivative breaks every ODE)."""
    path = make_path(name)
    h = 1e-6
    c, cp, cm = path.coefficients(T), path.coefficients(T + h), path.coefficients(T - h)
    assert torch.allclose((cp.a - cm.a) / (2 * h), c.da, rtol=1e-5, atol=1e-7)
    assert torch.allclose((cp.b - cm.b) / (2 * h), c.db, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(PATHS))
def test_path_goes_from_noise_to_data_and_inverts(name: str) -> None:
    """t = 0 is (almost) pure noise, t = 1 (almost) pure data; logsnr increases and t_from_logsnr inverts it."""
    path = make_path(name)
    ends = path.coefficients(torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert float(ends.a[0]) < 0.02 and float(ends.b[0]) > 0.99
    assert float(ends.a[1]) > 0.999 and float(ends.b[1]) < 0.01
    lam = path.logsnr(T)
    assert bool((lam[1:] > lam[:-1]).all())
    assert torch.allclose(path.t_from_logsnr(lam), T, atol=1e-9)
    if path.variance_preserving:
        c = path.coefficients(T)
        assert torch.allclose(c.a**2 + c.b**2, torch.ones_like(T))


def test_linear_path_is_the_flow_matching_convention() -> None:
    """x_t = (1-t)·x0 + t·x1 with velocity x1 - x0."""
    path = make_path("linear")
    x1, x0, t = torch.randn(4, 3), torch.randn(4, 3), torch.rand(4)
    assert torch.allclose(path.sample_xt(x1, x0, t), (1 - t[:, None]) * x0 + t[:, None] * x1)
    c = path.coefficients(t)
    assert torch.equal(c.da, torch.ones(4)) and torch.equal(c.db, -torch.ones(4))


def test_edm_path_uses_karras_noise_levels() -> None:
    """sigma(0) = sigma_max, sigma(1) = sigma_min, rho-interpolated in between."""
    path = make_path("edm")
    s = path.sigma(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    mid = (80 ** (1 / 7) + 0.5 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert torch.allclose(s, torch.tensor([80.0, mid, 0.002], dtype=torch.float64), rtol=1e-9)


@pytest.mark.parametrize("name", ["uniform", "logit_normal", "edm_lognormal"])
def test_time_samplers_stay_in_the_unit_interval(name: str) -> None:
    """Every training-time distribution returns t in [0, 1] with the expected centre."""
    path = make_path("edm" if name == "edm_lognormal" else "linear")
    t = make_time_sampler(name)(20000, path=path, generator=torch.Generator().manual_seed(0))
    assert t.shape == (20000,) and float(t.min()) >= 0 and float(t.max()) <= 1
    if name in ("uniform", "logit_normal"):
        assert abs(float(t.median()) - 0.5) < 0.02
    else:  # log sigma ~ N(-1.2, 1.2²): the median sigma is exp(-1.2)
        median_sigma = float(path.sigma(t.double()).median())
        assert abs(median_sigma / torch.exp(torch.tensor(-1.2)).item() - 1) < 0.05
