"""SYNTHETIC TEST DATA: plausible-looking forecast cycles for tests and benchmarks.

Nothing here comes from a model or observations. The fields are smooth analytic climatologies
(temperature falling towards the poles and with height, a geopotential consistent with it, a
mid-latitude jet) plus travelling waves and member perturbations whose amplitude grows with lead
time, so ensemble statistics (mean, spread, quantiles, exceedance probabilities) are non-trivial.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pipeline.forecast_store.schema import KNOWN_VARIABLES

if TYPE_CHECKING:
    import xarray as xr

DEFAULT_VARIABLES: tuple[str, ...] = (
    "temperature", "geopotential", "u_component_of_wind", "v_component_of_wind", "2m_temperature",
)
SURFACE = {"2m_temperature", "surface_pressure", "mean_sea_level_pressure", "10m_u_component_of_wind",
           "10m_v_component_of_wind", "total_precipitation_6hr"}


def grid_coords(n_lon: int, n_lat: int) -> tuple[np.ndarray, np.ndarray]:
    """Equiangular longitudes in [0, 360) and ascending latitudes (poles included when n_lat is odd)."""
    lon = np.arange(n_lon) * (360.0 / n_lon)
    if n_lat % 2:
        lat = np.linspace(-90.0, 90.0, n_lat)
    else:
        step = 180.0 / n_lat
        lat = -90.0 + step / 2 + step * np.arange(n_lat)
    return lon, lat


def synthetic_forecast(
    init_time: str | np.datetime64,
    *,
    members: int = 4,
    leads: int | Sequence[int] = 4,
    variables: Sequence[str] = DEFAULT_VARIABLES,
    grid: tuple[int, int] = (16, 8),
    levels: Sequence[int] = (500, 850),
    lead_step_hours: int = 6,
    seed: int = 0,
) -> xr.Dataset:
    """A SYNTHETIC forecast cycle in the store schema (for tests and benchmarks only).

    ``leads`` is a count (leads ``lead_step_hours``, 2·step, ...) or a list of lead hours; ``grid``
    is ``(n_lon, n_lat)``. The result depends only on the arguments (and ``seed``).
    """
    import xarray as xr

    init = np.datetime64(init_time, "ns")
    lead_hours = (np.arange(1, leads + 1) * lead_step_hours) if isinstance(leads, int) else np.asarray(leads)
    n_lon, n_lat = grid
    lon, lat = grid_coords(n_lon, n_lat)
    rng = np.random.default_rng([seed, int(init.astype("int64") // 3_600_000_000_000) % (2**31)])
    phi = np.deg2rad(lat)[None, None, :, None]
    lam = np.deg2rad(lon)[None, None, None, :]
    t = (lead_hours / 24.0)[:, None, None, None]  # days, dims (lead, member, lat, lon)
    growth = np.sqrt(t / t.max()) if t.max() > 0 else t
    hours0 = float(init.astype("int64") // 3_600_000_000_000)
    phase = rng.uniform(0, 2 * np.pi, size=(1, members, 1, 1))

    def wave(k: int, speed: float) -> np.ndarray:
        """A travelling zonal wave with member-dependent phase drift (dims lead, member, lat, lon)."""
        drift = phase * growth
        return np.cos(k * lam - speed * (t + hours0 / 24.0) + drift) * np.cos(phi) ** 2

    def field(name: str, level: float | None) -> np.ndarray:
        height = 0.0 if level is None else np.log(1000.0 / level)  # ~ scale heights above 1000 hPa
        noise = rng.standard_normal((len(lead_hours), members, n_lat, n_lon)) * growth
        if name in ("temperature", "2m_temperature"):
            base = 300.0 - 45.0 * np.sin(phi) ** 2 - 40.0 * height
            return base + 4.0 * wave(4, 0.7) + 1.5 * noise
        if name == "geopotential":
            z = 9.80665 * (7000.0 * height - 400.0 * np.sin(phi) ** 2 * (1 + height))
            return z + 600.0 * wave(4, 0.7) + 80.0 * noise
        if name == "u_component_of_wind":
            jet = 30.0 * (0.3 + height) * np.exp(-(((np.abs(np.rad2deg(phi)) - 40.0) / 15.0) ** 2))
            return jet + 6.0 * wave(3, 0.5) + 2.0 * noise
        if name == "v_component_of_wind":
            return 8.0 * wave(5, 0.6) * np.sin(2 * phi) ** 2 + 2.0 * noise
        if name in ("surface_pressure", "mean_sea_level_pressure"):
            return 101325.0 - 1500.0 * np.sin(2 * phi) ** 2 + 900.0 * wave(4, 0.7) + 150.0 * noise
        return 1.0 + wave(2, 0.3) + 0.2 * noise

    data_vars = {}
    for name in variables:
        units, long_name, _ = KNOWN_VARIABLES.get(name, ("1", name, ""))
        attrs = {"units": units, "long_name": long_name, "note": "SYNTHETIC test data"}
        if name in SURFACE:
            values = field(name, None).astype("float32")[None]
            dims: tuple[str, ...] = ("init_time", "lead_time", "member", "latitude", "longitude")
        else:
            values = np.stack([field(name, lv) for lv in levels], axis=2).astype("float32")[None]
            dims = ("init_time", "lead_time", "member", "level", "latitude", "longitude")
        data_vars[name] = (dims, values, attrs)
    coords = {
        "init_time": [init],
        "lead_time": (lead_hours * np.timedelta64(1, "h")).astype("timedelta64[ns]"),
        "member": np.arange(members),
        "latitude": lat,
        "longitude": lon,
    }
    if any(name not in SURFACE for name in variables):
        coords["level"] = np.asarray(levels, dtype="int64")
    return xr.Dataset(data_vars, coords=coords, attrs={"title": "SYNTHETIC forecast (test data only)"})
