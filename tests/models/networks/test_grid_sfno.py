"""The SFNO denoiser: its spherical harmonic transforms are exact, and it trains and saves like the U-Net."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

from models.networks.grid_sfno import GridSFNO, SphericalHarmonics, quadrature_weights

GAUSS_NODES, GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(16)
GAUSSIAN_LATITUDE = np.rad2deg(np.arcsin(GAUSS_NODES))
LONGITUDE = np.arange(32) * 360.0 / 32


def _harmonic(latitude: np.ndarray, degree: int, order: int) -> np.ndarray:
    colatitude, longitude = np.meshgrid(np.deg2rad(90 - latitude), np.deg2rad(LONGITUDE), indexing="ij")
    return sph_harm_y(degree, order, colatitude, longitude).real


def test_quadrature_weights_are_gauss_legendre_on_a_gaussian_grid() -> None:
    np.testing.assert_allclose(quadrature_weights(GAUSSIAN_LATITUDE), GAUSS_WEIGHTS, atol=1e-13)


def test_transform_finds_scipy_harmonics_and_inverts() -> None:
    """Re Y_5^3 + 0.5 Y_7^0 has coefficients 0.5 at (5, 3) and 0.5 at (7, 0) (Re Y = (Y + Ȳ)/2) and nothing else."""
    sht = SphericalHarmonics(GAUSSIAN_LATITUDE, len(LONGITUDE))
    field = _harmonic(GAUSSIAN_LATITUDE, 5, 3) + 0.5 * _harmonic(GAUSSIAN_LATITUDE, 7, 0)
    coefficients = sht(torch.tensor(field)[None])[0].numpy()
    expected = np.zeros_like(coefficients)
    expected[5, 3] = expected[7, 0] = 0.5
    np.testing.assert_allclose(coefficients, expected, atol=1e-6)
    np.testing.assert_allclose(sht.inverse(torch.tensor(coefficients)[None])[0].numpy(), field, atol=1e-6)


def test_transform_inverts_band_limited_fields_on_an_equiangular_grid() -> None:
    latitude = np.linspace(-87.5, 87.5, 36)
    sht = SphericalHarmonics(latitude, len(LONGITUDE), lmax=12)
    field = _harmonic(latitude, 4, 2) - _harmonic(latitude, 9, 5)
    np.testing.assert_allclose(sht.inverse(sht(torch.tensor(field)[None]))[0].numpy(), field, atol=1e-5)


def test_sfno_is_rotation_equivariant_in_longitude_and_learns() -> None:
    """A shift by whole grid columns commutes with the network; a few AdamW steps lower a regression loss."""
    torch.manual_seed(0)
    net = GridSFNO(in_channels=3, out_channels=3, condition_channels=2, latitude=GAUSSIAN_LATITUDE,
                   longitude=LONGITUDE, width=16, depth=2)
    torch.nn.init.normal_(net.head.weight, std=0.1)
    x, fields, t = torch.randn(4, 3, 16, 32), torch.randn(4, 2, 16, 32), torch.rand(4)
    out = net(x, t, {"fields": fields})
    shifted = net(x.roll(5, dims=-1), t, {"fields": fields.roll(5, dims=-1)})
    torch.testing.assert_close(shifted, out.roll(5, dims=-1), atol=1e-4, rtol=1e-4)

    target = torch.randn(4, 3, 16, 32)
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = (net(x, t, {"fields": fields}) - target).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_sfno_refuses_another_grid() -> None:
    net = GridSFNO(in_channels=1, out_channels=1, latitude=GAUSSIAN_LATITUDE, longitude=LONGITUDE, width=8, depth=1)
    with pytest.raises(ValueError, match="built for a"):
        net(torch.randn(1, 1, 16, 30), torch.rand(1))
