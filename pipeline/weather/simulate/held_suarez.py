"""Held & Suarez (1994) forcing on the dry primitive equations of the ``dinosaur-torch`` spectral core.

Held, I. M. and M. J. Suarez, 1994: A proposal for the intercomparison of the dynamical cores of
atmospheric general circulation models. *Bull. Amer. Meteor. Soc.*, 75, 1825–1830.

The forcing, written from the paper's equations (σ = p / p_s, φ latitude):

* Rayleigh friction on the winds:   ∂v/∂t = … − k_v(σ) v,
  k_v = k_f · max(0, (σ − σ_b) / (1 − σ_b)),  k_f = 1 day⁻¹, σ_b = 0.7.
* Newtonian relaxation of temperature:   ∂T/∂t = … − k_T(φ, σ) (T − T_eq),
  k_T = k_a + (k_s − k_a) · max(0, (σ − σ_b) / (1 − σ_b)) · cos⁴φ,  k_a = 1/40 day⁻¹, k_s = 1/4 day⁻¹,
  T_eq = max(200 K, [315 K − ΔT_y sin²φ − Δθ_z log(p/p₀) cos²φ] (p/p₀)^κ),
  ΔT_y = 60 K, Δθ_z = 10 K, p₀ = 1000 hPa, κ = 2/7.

No orography; surface pressure is not forced. The module holds only physics: building the core and
stepping it is :mod:`pipeline.weather.simulate.model`.

**Diurnal heating** (velocast's addition, off by default; it makes the regional development case): a
near-surface heating that follows the sun, stronger over land, zero in its daily mean,

    ∂T/∂t = … + Q_d · m(φ, λ) · w(σ) · (max(0, cos ζ) − c̄(φ, δ)),

with ``w = max(0, (σ − σ_b)/(1 − σ_b))`` (the boundary layer of the friction term), ``m = 1`` over land and
``sea_fraction`` over sea (a fixed land–sea mask, :func:`idealised_land`), ``cos ζ`` the solar zenith angle and
``c̄`` the daily mean of its positive part (both from :mod:`pipeline.weather.solar`, as the model's forcing
features), so the heating adds no energy over a day.
"""

from __future__ import annotations

import numpy as np
import torch
from dinosaur_torch import coordinate_systems, primitive_equations, scales, units
from dinosaur_torch.time_integration import ExplicitODE

from pipeline.weather import solar

SECONDS_PER_DAY = 86400.0


class HeldSuarezForcing(ExplicitODE):
    """Explicit Held–Suarez tendencies (friction + thermal relaxation) on a sigma-coordinate state."""

    def __init__(
        self,
        *,
        coords: coordinate_systems.CoordinateSystem,
        physics_specs: units.SimUnits,
        reference_temperature: np.ndarray,
        sigma_b: float = 0.7,
        k_f_per_day: float = 1.0,
        k_a_per_day: float = 1.0 / 40.0,
        k_s_per_day: float = 1.0 / 4.0,
        delta_t_y: float = 60.0,
        delta_theta_z: float = 10.0,
        t_max: float = 315.0,
        t_min: float = 200.0,
        p0_pa: float = 1.0e5,
        diurnal_k_per_day: float = 0.0,
        land: np.ndarray | None = None,
        sea_fraction: float = 0.2,
    ) -> None:
        self.coords = coords
        self.physics_specs = physics_specs
        grid = coords.horizontal
        ref = grid.cos_lat
        dtype, device = ref.dtype, ref.device
        nondim = physics_specs.nondimensionalize
        per_day = lambda k: nondim(k / SECONDS_PER_DAY / scales.units.s)

        sigma = np.asarray(coords.vertical.coordinates.centers, np.float64)
        cutoff = np.maximum(0.0, (sigma - sigma_b) / (1.0 - sigma_b))[:, None, None]
        _, sin_lat = grid.spec.nodal_mesh  # (lon, lat)
        sin_lat = sin_lat[None]
        cos_lat = np.sqrt(1.0 - sin_lat**2)

        t = lambda a: torch.as_tensor(np.asarray(a, np.float64), dtype=dtype, device=device)
        self.k_v = t(per_day(k_f_per_day) * cutoff)  # (layers, 1, 1)
        self.k_t = t(per_day(k_a_per_day) + (per_day(k_s_per_day) - per_day(k_a_per_day)) * cutoff * cos_lat**4)
        self.sigma = t(sigma[:, None, None])
        self.sin2 = t(sin_lat**2)
        self.cos2 = t(cos_lat**2)
        self.sec2 = t(1.0 / cos_lat**2)
        self.kappa = float(physics_specs.kappa)
        self.p0 = float(nondim(p0_pa * scales.units.pascal))
        self.t_max, self.t_min = float(nondim(t_max * scales.units.degK)), float(nondim(t_min * scales.units.degK))
        self.delta_t_y = float(nondim(delta_t_y * scales.units.degK))
        self.delta_theta_z = float(nondim(delta_theta_z * scales.units.degK))
        self.t_ref = t(np.asarray(reference_temperature, np.float64)[:, None, None])
        # diurnal heating: amplitude per layer and cell, and the clock (set by the model before each step)
        self.diurnal = diurnal_k_per_day > 0
        if self.diurnal:
            lon, _ = grid.spec.nodal_mesh
            weight = np.ones_like(sin_lat[0]) if land is None else sea_fraction + (1 - sea_fraction) * land
            self.q_diurnal = t(per_day(diurnal_k_per_day) * cutoff * weight[None])  # (layers, lon, lat)
            self.lon = np.asarray(lon, np.float64)
            self.sin_lat_np = np.asarray(sin_lat[0], np.float64)
            self.sun = t(np.zeros_like(self.sin_lat_np))

    def set_clock(self, utc_hours: float, day_of_year: float) -> None:
        """The time the next step's diurnal heating is evaluated at (the step's midpoint)."""
        if not self.diurnal:
            return
        dec = solar.declination(day_of_year)
        sin_lat = self.sin_lat_np
        cos_lat = np.sqrt(1.0 - sin_lat**2)
        cos_zenith = solar.cos_zenith_angle(sin_lat, cos_lat, self.lon, utc_hours, dec)
        daily_mean = solar.daily_mean_daylight(sin_lat, cos_lat, dec)
        self.sun = torch.as_tensor(np.maximum(cos_zenith, 0.0) - daily_mean, dtype=self.q_diurnal.dtype)

    def equilibrium_temperature(self, surface_pressure: torch.Tensor) -> torch.Tensor:
        """T_eq(φ, p) of Held & Suarez (1994), eq. (2), for nodal surface pressure (…, 1, lon, lat)."""
        p_over_p0 = self.sigma * surface_pressure / self.p0
        teq = (
            self.t_max - self.delta_t_y * self.sin2 - self.delta_theta_z * torch.log(p_over_p0) * self.cos2
        ) * p_over_p0**self.kappa
        return torch.clamp(teq, min=self.t_min)

    def explicit_terms(self, state: primitive_equations.State) -> primitive_equations.State:
        grid = self.coords.horizontal
        u_cos, v_cos = grid.cos_lat_vector(state.vorticity, state.divergence, clip=False)
        # Friction -k_v·v as vorticity/divergence tendencies: curl/div of w·cosφ with w = -k_v·(v cosφ)·sec²φ.
        nodal_u_cos = grid.to_nodal(u_cos)
        nodal_v_cos = grid.to_nodal(v_cos)
        fu = grid.to_modal(-self.k_v * nodal_u_cos * self.sec2)
        fv = grid.to_modal(-self.k_v * nodal_v_cos * self.sec2)
        vorticity_tendency = grid.curl_cos_lat((fu, fv), clip=False)
        divergence_tendency = grid.div_cos_lat((fu, fv), clip=False)

        nodal_temperature = self.t_ref + grid.to_nodal(state.temperature_variation)
        surface_pressure = torch.exp(grid.to_nodal(state.log_surface_pressure))
        teq = self.equilibrium_temperature(surface_pressure)
        heating = -self.k_t * (nodal_temperature - teq)
        if self.diurnal:
            heating = heating + self.q_diurnal * self.sun
        temperature_tendency = grid.to_modal(heating)
        return primitive_equations.State(
            vorticity=vorticity_tendency,
            divergence=divergence_tendency,
            temperature_variation=temperature_tendency,
            log_surface_pressure=torch.zeros_like(state.log_surface_pressure),
            tracers={},
            sim_time=None,
        )


def idealised_land(longitude_rad: np.ndarray, sin_latitude: np.ndarray, *, fraction: float = 0.4) -> np.ndarray:
    """A fixed land–sea mask (1 land, 0 sea) of smooth idealised continents: the top ``fraction`` of a sum of
    low-order waves in longitude and latitude with fixed (seeded) amplitudes and phases."""
    rng = np.random.default_rng(1994)
    lat = np.arcsin(np.clip(sin_latitude, -1.0, 1.0))
    field = np.zeros(np.broadcast(longitude_rad, lat).shape)
    for m in range(1, 5):
        for n in range(1, 4):
            a, p, q = rng.normal(), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
            field += a / (m + n) * np.cos(m * longitude_rad + p) * np.cos(2 * n * lat + q)
    return (field >= np.quantile(field, 1.0 - fraction)).astype(np.float64)


__all__ = ["SECONDS_PER_DAY", "HeldSuarezForcing", "idealised_land"]
