"""A spherical Fourier neural operator (SFNO, Bonev et al. 2023) denoiser for global latitude-longitude grids.

The spherical harmonic transform of a field ``f`` on ``H`` latitudes ``θ_j`` × ``W`` equally spaced longitudes:

    f̂_lm = Σ_j w_j P̄_l^m(cos θ_j) · (2π/W) Σ_k f_jk e^{-i m φ_k}
    f_jk = Σ_m Σ_l f̂_lm P̄_l^m(cos θ_j) e^{i m φ_k}

with orthonormal associated Legendre functions ``P̄`` (∫ |P̄_l^m(cos θ) e^{imφ}|² dΩ = 1) and interpolatory
quadrature weights ``w_j`` for the grid's own latitudes (Gauss–Legendre weights on a Gaussian grid, exact to
degree 2H−1; exact to degree H−1 on any other grid). Degrees ``l < H`` and orders ``m ≤ min(l_max, W/2)`` are
kept.

A block is ``x + MLP(σ(SHT⁻¹(K_l · SHT(FiLM(norm(x)))) + conv1×1(...)))``: the spectral kernel ``K_l`` mixes
channels per degree ``l`` (isotropic, as the Driscoll–Healy convolution theorem allows). The transforms run in
float32 even under autocast. Conditioning is that of :class:`~models.networks.grid_unet.GridUNet`.

Written here rather than taken from ``torch-harmonics`` because that library publishes no build for the torch
this project pins (its wheels are compiled against one torch release each and its source build compiles C++
kernels); only its two transforms are needed, and they are short. ``tests/models/networks/test_grid_sfno.py``
checks them against ``scipy.special.sph_harm_y``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.guidance import NamedCondition
from models.networks.grid_conditioning import GridConditioner
from models.networks.grid_padding import GridPadding


def quadrature_weights(latitude: np.ndarray) -> np.ndarray:
    """Interpolatory weights ``w`` with ``Σ_j w_j p(sin lat_j) = ∫_{-1}^{1} p(μ) dμ`` for every polynomial ``p`` of
    degree < H (Legendre moments; least squares)."""
    mu = np.sin(np.deg2rad(np.asarray(latitude, dtype=np.float64)))
    vandermonde = np.polynomial.legendre.legvander(mu, len(mu) - 1).T  # (degree, j)
    moments = np.zeros(len(mu))
    moments[0] = 2.0
    return np.linalg.lstsq(vandermonde, moments, rcond=None)[0]


def legendre_table(latitude: np.ndarray, lmax: int, mmax: int) -> np.ndarray:
    """``P̄_l^m(sin lat_j)`` as ``(mmax, lmax, H)`` (zero where ``l < m``), orthonormal on the sphere, by the
    standard stable three-term recurrence in float64."""
    x = np.sin(np.deg2rad(np.asarray(latitude, dtype=np.float64)))
    s = np.sqrt(np.clip(1.0 - x * x, 0.0, None))
    table = np.zeros((mmax, lmax, len(x)))
    diagonal = np.full_like(x, math.sqrt(1.0 / (4.0 * math.pi)))
    for m in range(mmax):
        if m > 0:
            diagonal = -math.sqrt((2 * m + 1) / (2 * m)) * s * diagonal
        if m >= lmax:
            break
        table[m, m] = diagonal
        if m + 1 < lmax:
            table[m, m + 1] = math.sqrt(2 * m + 3) * x * diagonal
        for l in range(m + 2, lmax):
            a = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
            table[m, l] = a * (x * table[m, l - 1] - b * table[m, l - 2])
    return table


class SphericalHarmonics(nn.Module):
    """Real-field SHT on one grid: ``forward(f (…, H, W)) -> f̂ (…, l, m)`` complex, ``inverse(f̂) -> f``."""

    def __init__(self, latitude: np.ndarray, width: int, *, lmax: int | None = None) -> None:
        super().__init__()
        self.width = width
        self.lmax = lmax or len(latitude)
        self.mmax = min(self.lmax, width // 2 + 1)
        table = legendre_table(latitude, self.lmax, self.mmax)
        weighted = table * quadrature_weights(latitude)[None, None, :]
        self.register_buffer("analysis", torch.from_numpy(weighted).float(), persistent=False)  # (m, l, j)
        self.register_buffer("synthesis", torch.from_numpy(table).float(), persistent=False)

    def forward(self, f: Tensor) -> Tensor:
        fourier = torch.fft.rfft(f.float(), dim=-1, norm="forward")[..., : self.mmax] * (2 * math.pi)
        fourier = torch.view_as_real(fourier)  # (…, j, m, 2)
        coefficients = torch.einsum("...jmc,mlj->...lmc", fourier, self.analysis)
        return torch.view_as_complex(coefficients.contiguous())

    def inverse(self, coefficients: Tensor) -> Tensor:
        real = torch.view_as_real(coefficients)  # (…, l, m, 2)
        fourier = torch.einsum("...lmc,mlj->...jmc", real, self.synthesis)
        return torch.fft.irfft(torch.view_as_complex(fourier.contiguous()), n=self.width, dim=-1, norm="forward")


class SpectralBlock(nn.Module):
    """norm → FiLM → (spectral kernel per degree + 1×1) → GELU → MLP, added to the input."""

    def __init__(self, width: int, embed_dim: int, harmonics: SphericalHarmonics, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.harmonics = harmonics
        self.norm = nn.GroupNorm(1, width)
        self.film = nn.Linear(embed_dim, 2 * width)
        scale = 1.0 / width
        # complex weights stored as (…, 2) reals: safetensors and every optimiser take them as they are
        self.kernel = nn.Parameter(scale * torch.randn(width, width, harmonics.lmax, 2))
        self.local = nn.Conv2d(width, width, 1)
        self.mlp = nn.Sequential(nn.Conv2d(width, mlp_ratio * width, 1), nn.GELU(),
                                 nn.Conv2d(mlp_ratio * width, width, 1))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        scale, shift = self.film(embedding)[:, :, None, None].chunk(2, dim=1)
        h = self.norm(x) * (1 + scale) + shift
        with torch.autocast(device_type=x.device.type, enabled=False):
            coefficients = self.harmonics(h)  # (B, C, l, m)
            mixed = torch.einsum("bilm,iol->bolm", coefficients, torch.view_as_complex(self.kernel))
            spectral = self.harmonics.inverse(mixed)
        h = F.gelu(spectral.to(h.dtype) + self.local(h))
        return x + self.mlp(h)


class GridSFNO(nn.Module):
    """SFNO denoiser on a global grid of ``latitude × longitude`` (any ``H × W``; no padding needed).

    Same call as :class:`~models.networks.grid_unet.GridUNet`: ``net(x_t, t, {"fields", "globals"}, drop=None)``.
    """

    def __init__(self, *, in_channels: int, out_channels: int, latitude: np.ndarray, longitude: np.ndarray,
                 condition_channels: int = 0, global_features: int = 0, width: int = 64, depth: int = 6,
                 mlp_ratio: int = 2) -> None:
        super().__init__()
        self.periodic_longitude = True
        self.multiple = 1
        self.grid_shape = (len(latitude), len(longitude))
        embed_dim = 4 * width
        self.conditioner = GridConditioner(embed_dim=embed_dim, time_dim=width, global_features=global_features,
                                           condition_channels=condition_channels)
        self.encoder = nn.Sequential(nn.Conv2d(in_channels + condition_channels, width, 1), nn.GELU(),
                                     nn.Conv2d(width, width, 1))
        self.harmonics = SphericalHarmonics(np.asarray(latitude), len(longitude))
        self.blocks = nn.ModuleList(SpectralBlock(width, embed_dim, self.harmonics, mlp_ratio) for _ in range(depth))
        self.head_norm = nn.GroupNorm(1, width)
        self.head = nn.Conv2d(width, out_channels, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def padding(self, height: int, width: int) -> GridPadding:
        """No padding: the transforms are built for the grid itself, which must be the construction grid."""
        if (height, width) != self.grid_shape:
            raise ValueError(f"this SFNO was built for a {self.grid_shape} grid, got ({height}, {width})")
        return GridPadding.plan(height, width, 1, periodic_longitude=True)

    def forward(self, x: Tensor, t: Tensor, condition: NamedCondition = None, drop: Tensor | None = None) -> Tensor:
        self.padding(*x.shape[-2:])
        x, embedding = self.conditioner(x, t, condition, drop)
        h = self.encoder(x)
        for block in self.blocks:
            h = block(h, embedding)
        return self.head(F.gelu(self.head_norm(h)))
