"""The embedded atmosphere: Held–Suarez-forced dry primitive equations on ``dinosaur-torch``.

:class:`AtmosphereModel` builds the spectral core (T21 by default: 64×32 Gaussian grid, equidistant
sigma levels, float32), composes it with :class:`~pipeline.weather.simulate.held_suarez.HeldSuarezForcing`,
steps it with the SIL3 IMEX Runge–Kutta scheme plus a spectral step filter, and turns a modal state
into canonical fields on pressure levels (SI units, latitude ascending, longitude 0→360).
A state may carry a leading batch axis (ensemble members), so one step advances all members at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, model_validator

from pipeline.config import StrictModel

# Bump when a change alters the simulated numbers: it is part of the cache key.
SIMULATOR_VERSION = "hs-1"

#: Torch threads used while stepping (``$VELOCAST_SIM_THREADS``, default 1): the T21 core is too small to
#: gain from threads, and on shared busy cores 2 threads measured ~12× slower than 1.
SIM_THREADS_ENV = "VELOCAST_SIM_THREADS"

#: Time step per truncation: dt·U·n/a ≈ 0.7 for U = 60 m/s (SIL3's explicit part is stable to ~1.7).
#: At T21, 60 and 30 minutes gave the same climate over 618 days (jet 28.6 vs 28.3 m/s, eddy Z500 std
#: 595 vs 598 m²/s²) at 1.6× the speed.
DEFAULT_DT_MINUTES = {"T21": 60.0, "T31": 40.0, "T42": 30.0}

STATE_FIELDS = ("vorticity", "divergence", "temperature_variation", "log_surface_pressure")


@contextmanager
def sim_threads() -> Iterator[None]:
    """Run the block with ``$VELOCAST_SIM_THREADS`` (default 1) torch threads, then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(os.environ.get(SIM_THREADS_ENV, "1"))))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class AtmosphereConfig(StrictModel):
    """Parameters of one Held–Suarez run (all of them enter the cache key)."""

    resolution: Literal["T21", "T31", "T42"] = Field("T21", description="spectral truncation")
    layers: int = Field(8, ge=4, le=40, description="equidistant sigma levels")
    dt_minutes: float = Field(
        None, gt=0, validate_default=False,
        description="time step in minutes (default by resolution, an advective CFL number of ~0.7 at 60 m/s: "
                    "T21 60, T31 40, T42 30)",
    )
    spinup_days: float = Field(300.0, ge=0, description="discarded spin-up (≥ 200 for a climate)")
    days: float = Field(365.0, gt=0, description="simulated days kept after the spin-up")
    seed: int = Field(0, description="seed of the initial temperature perturbation")
    output_hours: int = Field(6, ge=1, description="hours between outputs")
    levels: tuple[int, ...] = Field((250, 500, 850), description="output pressure levels, hPa")
    start: str = Field("2000-01-01T00:00", description="calendar time of the first output (nominal)")
    filter_attenuation_per_hour: float = Field(
        48.0, gt=0, description="exponential spectral filter strength at the smallest scale, per hour"
    )
    filter_order: int = Field(8, ge=1, description="order of the exponential spectral filter")
    diurnal_heating_k_per_day: float = Field(
        0.0, ge=0, description="near-surface diurnal heating that follows the sun, peak rate over land in K/day "
                               "(0: the plain Held–Suarez atmosphere); also outputs 2m_temperature and land_sea_mask",
    )
    sea_heating_fraction: float = Field(0.2, ge=0, le=1, description="diurnal heating over sea ÷ over land")

    @model_validator(mode="before")
    @classmethod
    def _default_time_step(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("dt_minutes") is None:
            data = {**data, "dt_minutes": DEFAULT_DT_MINUTES[data.get("resolution", "T21")]}
        return data


@dataclass
class ModalState:
    """Restartable model state (modal coefficients); leading axes are batch axes."""

    vorticity: torch.Tensor
    divergence: torch.Tensor
    temperature_variation: torch.Tensor
    log_surface_pressure: torch.Tensor


class AtmosphereModel:
    """The Held–Suarez atmosphere: build once, then :meth:`step`, :meth:`fields`."""

    def __init__(self, config: AtmosphereConfig, *, compile: bool = False) -> None:
        from dinosaur_torch import (
            coordinate_systems,
            filtering,
            primitive_equations,
            scales,
            sigma_coordinates,
            spherical_harmonic,
            time_integration,
            units,
            vertical_interpolation,
        )

        from pipeline.weather.simulate.held_suarez import HeldSuarezForcing

        self.config = config
        self._pe = primitive_equations
        self._vi = vertical_interpolation
        dtype = torch.float32
        self.physics = units.SimUnits.from_si()
        spec = getattr(spherical_harmonic.GridSpec, config.resolution)(radius=self.physics.radius)
        grid = spherical_harmonic.Grid(spec, dtype=dtype)
        sigma = sigma_coordinates.SigmaCoordinates.equidistant(config.layers)
        self.coords = coordinate_systems.CoordinateSystem(grid, sigma_coordinates.SigmaLevels(sigma, dtype=dtype))
        self.grid = grid
        self.reference_temperature = np.full(config.layers, 288.0)
        self._u = scales.units
        nondim = self.physics.nondimensionalize
        orography = torch.zeros(grid.modal_shape, dtype=dtype)
        self.dycore = primitive_equations.PrimitiveEquations(
            self.reference_temperature, orography, self.coords, self.physics
        )
        from pipeline.weather.simulate.held_suarez import idealised_land

        lon_mesh, sin_lat_mesh = grid.spec.nodal_mesh  # (lon, lat)
        self.diurnal = config.diurnal_heating_k_per_day > 0
        self.land = idealised_land(np.asarray(lon_mesh), np.asarray(sin_lat_mesh)) if self.diurnal else None
        self.forcing = HeldSuarezForcing(
            coords=self.coords, physics_specs=self.physics, reference_temperature=self.reference_temperature,
            diurnal_k_per_day=config.diurnal_heating_k_per_day, land=self.land,
            sea_fraction=config.sea_heating_fraction,
        )
        self._start = pd.Timestamp(config.start)
        self.dt = float(nondim(config.dt_minutes * 60.0 * scales.units.s))
        equation = time_integration.compose_equations([self.dycore, self.forcing])
        step = time_integration.imex_rk_sil3(equation, self.dt)
        attenuation = config.filter_attenuation_per_hour * config.dt_minutes / 60.0
        filt = time_integration.runge_kutta_step_filter(
            filtering.exponential_filter(grid, attenuation, config.filter_order)
        )
        self._step = time_integration.step_with_filters(step, [filt])
        self.compiled = False
        if compile:
            self._compile()
        steps = config.output_hours * 60.0 / config.dt_minutes
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError("output_hours must be a whole number of time steps")
        self.steps_per_output = round(steps)
        self.pressure_pa = np.asarray(config.levels, np.float64) * 100.0
        self._p_nd = torch.as_tensor(
            [nondim(p * scales.units.pascal) for p in self.pressure_pa], dtype=dtype
        )
        self._geopotential = primitive_equations.Geopotential(
            sigma, float(self.physics.g), float(self.physics.R), dtype=dtype
        )
        self._scale = {
            "velocity": float(self.physics.dimensionalize(1.0, scales.units("m/s")).m),
            "geopotential": float(self.physics.dimensionalize(1.0, scales.units("m**2/s**2")).m),
            "pressure": float(self.physics.dimensionalize(1.0, scales.units.pascal).m),
        }
        lon = np.rad2deg(spec.longitudes)
        lat = np.rad2deg(spec.latitudes)
        self.longitude = np.mod(lon, 360.0)
        self.latitude = lat
        self._lat_order = np.argsort(lat)  # canonical latitude: ascending

    def _compile(self) -> None:
        # One eager step fills the core's per-step-size implicit-inverse cache (NumPy; not traceable).
        self.advance(self.initial_state(0), 1, hours=0.0)
        self._step = torch.compile(self._step, fullgraph=True, dynamic=False)
        self.compiled = True

    # -- states ---------------------------------------------------------------------------------------

    def initial_state(self, seed: int) -> ModalState:
        """Isothermal (288 K) resting atmosphere at 1000 hPa plus seeded noise of 0.1 K rms on T'."""
        g = torch.Generator().manual_seed(int(seed))
        grid = self.grid
        modal = (self.config.layers, *grid.modal_shape)
        nodal_noise = 0.1 * torch.randn((self.config.layers, *grid.nodal_shape), generator=g, dtype=torch.float32)
        temperature = grid.clip_wavenumbers(grid.to_modal(nodal_noise))
        p_surface = float(self.physics.nondimensionalize(1.0e5 * self._u.pascal))
        lsp = grid.to_modal(torch.full((1, *grid.nodal_shape), float(np.log(p_surface)), dtype=torch.float32))
        return ModalState(
            vorticity=torch.zeros(modal, dtype=torch.float32),
            divergence=torch.zeros(modal, dtype=torch.float32),
            temperature_variation=temperature,
            log_surface_pressure=lsp,
        )

    def advance(self, state: ModalState, steps: int, *, hours: float | None = None) -> ModalState:
        """``steps`` model time steps from ``state``, valid ``hours`` after ``config.start`` (needed, and only
        used, for the diurnal heating: its clock is set at each step's midpoint)."""
        if self.diurnal and hours is None:
            raise ValueError("a run with diurnal heating needs the state's time (hours since the start) to advance")
        s = self._pe.State(
            vorticity=state.vorticity,
            divergence=state.divergence,
            temperature_variation=state.temperature_variation,
            log_surface_pressure=state.log_surface_pressure,
            tracers={},
            sim_time=None,
        )
        with torch.no_grad(), sim_threads():
            for k in range(steps):
                if self.diurnal:
                    self._set_clock(float(hours) + (k + 0.5) * self.config.dt_minutes / 60.0)
                s = self._step(s)
        return ModalState(s.vorticity, s.divergence, s.temperature_variation, s.log_surface_pressure)

    def _set_clock(self, hours: float) -> None:
        instant = self._start + pd.Timedelta(hours=hours)
        utc = instant.hour + instant.minute / 60.0 + instant.second / 3600.0
        self.forcing.set_clock(utc, instant.day_of_year + utc / 24.0)

    def land_sea_mask(self) -> np.ndarray:
        """``(latitude, longitude)`` land–sea mask of the diurnal run (canonical orientation)."""
        if self.land is None:
            raise ValueError("only a run with diurnal heating has a land-sea mask")
        return np.swapaxes(self.land, 0, 1)[self._lat_order, :].astype(np.float32)

    def observed(self, state: ModalState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """What a store of this run keeps, in model units and differentiable (no numpy, no ``no_grad``):
        ``levels`` (4, …, P, lon, lat) = T, Φ, u, v on the pressure levels, ``ps`` (…, 1, lon, lat), and
        the lowest level's T (…, lon, lat) of a run with diurnal heating (else ``None``). With ``ps`` held
        fixed the interpolation weights are fixed, so ``levels`` is affine in (vorticity, divergence, T')."""
        grid = self.grid
        t_nodal = grid.to_nodal(state.temperature_variation) + torch.as_tensor(
            self.reference_temperature[:, None, None], dtype=torch.float32
        )
        u, v = grid.vor_div_to_uv_nodal(state.vorticity, state.divergence, clip=False)
        ps = torch.exp(grid.to_nodal(state.log_surface_pressure))  # (…, 1, lon, lat)
        zero_orography = torch.zeros((1, *grid.nodal_shape), dtype=torch.float32)
        phi = self._geopotential(t_nodal, zero_orography)
        stacked = torch.stack([t_nodal.expand_as(phi), phi, u, v])  # (4, …, layer, lon, lat)
        levels = sigma_to_pressure(stacked, self.coords.vertical.centers, self._p_nd[:, None, None] / ps)
        return levels, ps, (t_nodal[..., -1, :, :] if self.diurnal else None)

    def fields(self, state: ModalState) -> dict[str, np.ndarray]:
        """Canonical fields (SI) on pressure levels: ``temperature``, ``geopotential``,
        ``u_component_of_wind``, ``v_component_of_wind`` of shape (…, level, latitude, longitude)
        and ``surface_pressure`` of shape (…, latitude, longitude); latitude ascending."""
        with torch.no_grad():
            levels, ps, near = self.observed(state)
            out: dict[str, np.ndarray] = {}
            scales_ = (1.0, self._scale["geopotential"], self._scale["velocity"], self._scale["velocity"])
            names = ("temperature", "geopotential", "u_component_of_wind", "v_component_of_wind")
            for i, (name, scale) in enumerate(zip(names, scales_)):
                arr = (levels[i].numpy() * scale).astype(np.float32)
                out[name] = np.swapaxes(arr, -1, -2)[..., self._lat_order, :]
            sp = (ps[..., 0, :, :].numpy() * self._scale["pressure"]).astype(np.float32)
            out["surface_pressure"] = np.swapaxes(sp, -1, -2)[..., self._lat_order, :]
            if near is not None:  # the lowest model level (σ = 1 − 1/(2·layers)) as the near-surface temperature
                out["2m_temperature"] = np.swapaxes(near.numpy().astype(np.float32), -1, -2)[..., self._lat_order, :]
        return out


def sigma_to_pressure(fields: torch.Tensor, sigma: torch.Tensor, target_sigma: torch.Tensor) -> torch.Tensor:
    """Linear interpolation in σ with linear extrapolation (as dinosaur's ``interp_sigma_to_pressure``
    with ``extrapolate='linear'``), vectorised over leading axes.

    ``fields``: (V, …, layer, lon, lat); ``target_sigma`` = p / p_s: (…, P, lon, lat) → (V, …, P, lon, lat).
    """
    n = sigma.shape[0]
    u = torch.searchsorted(sigma, target_sigma.contiguous(), right=True).clamp(1, n - 1)
    x_lo, x_hi = sigma[u - 1], sigma[u]
    w = (target_sigma - x_lo) / (x_hi - x_lo)
    idx = u.expand(fields.shape[0], *u.shape)
    f_lo, f_hi = torch.gather(fields, -3, idx - 1), torch.gather(fields, -3, idx)
    return f_lo + w * (f_hi - f_lo)


def state_to_numpy(state: ModalState) -> dict[str, np.ndarray]:
    """The state's tensors as float32 arrays (bitwise: a restart from them is exact)."""
    return {name: getattr(state, name).numpy().astype(np.float32, copy=True) for name in STATE_FIELDS}


def state_from_numpy(arrays: dict[str, np.ndarray]) -> ModalState:
    """Inverse of :func:`state_to_numpy`."""
    return ModalState(**{name: torch.from_numpy(np.ascontiguousarray(arrays[name], np.float32)) for name in STATE_FIELDS})
