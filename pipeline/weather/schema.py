"""The canonical weather schema (WeatherBench2 / ERA5 names and units).

Dimensions: ``time`` (datetime64[ns], UTC), ``level`` (int32, hPa), ``latitude`` (degrees north,
**ascending** −90 → 90, as in WeatherBench2's Zarr), ``longitude`` (degrees east, ascending and
contiguous: [0, 360) on a global grid, the source's own convention on a regional one; see :mod:`pipeline.geo`).
Forecast stores add ``init_time``, ``lead_time`` (timedelta64[ns]) and ``member``.

A *channel* is a variable at one level (``temperature_850``) or a surface variable (``2m_temperature``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["level", "surface", "static"]


@dataclass(frozen=True)
class VariableInfo:
    """A canonical variable: its units and whether it has a ``level`` dimension or no ``time``."""

    units: str
    kind: Kind


CANONICAL: dict[str, VariableInfo] = {
    # pressure-level variables
    "temperature": VariableInfo("K", "level"),
    "geopotential": VariableInfo("m**2 s**-2", "level"),
    "u_component_of_wind": VariableInfo("m s**-1", "level"),
    "v_component_of_wind": VariableInfo("m s**-1", "level"),
    "vertical_velocity": VariableInfo("Pa s**-1", "level"),
    "specific_humidity": VariableInfo("kg kg**-1", "level"),
    "relative_humidity": VariableInfo("%", "level"),
    "vorticity": VariableInfo("s**-1", "level"),
    "divergence": VariableInfo("s**-1", "level"),
    # surface variables
    "2m_temperature": VariableInfo("K", "surface"),
    "2m_dewpoint_temperature": VariableInfo("K", "surface"),
    "mean_sea_level_pressure": VariableInfo("Pa", "surface"),
    "surface_pressure": VariableInfo("Pa", "surface"),
    "10m_u_component_of_wind": VariableInfo("m s**-1", "surface"),
    "10m_v_component_of_wind": VariableInfo("m s**-1", "surface"),
    "sea_surface_temperature": VariableInfo("K", "surface"),
    "total_column_water_vapour": VariableInfo("kg m**-2", "surface"),
    "total_precipitation_6hr": VariableInfo("m", "surface"),
    "total_precipitation": VariableInfo("m", "surface"),
    # static fields
    "land_sea_mask": VariableInfo("1", "static"),
    "geopotential_at_surface": VariableInfo("m**2 s**-2", "static"),
}

#: ERA5 / GRIB short names (and common CF aliases) → canonical names.
ERA5_SHORT_NAMES: dict[str, str] = {
    "t": "temperature",
    "z": "geopotential",
    "u": "u_component_of_wind",
    "v": "v_component_of_wind",
    "w": "vertical_velocity",
    "q": "specific_humidity",
    "r": "relative_humidity",
    "vo": "vorticity",
    "d": "divergence",
    "t2m": "2m_temperature",
    "2t": "2m_temperature",
    "d2m": "2m_dewpoint_temperature",
    "2d": "2m_dewpoint_temperature",
    "msl": "mean_sea_level_pressure",
    "sp": "surface_pressure",
    "u10": "10m_u_component_of_wind",
    "10u": "10m_u_component_of_wind",
    "v10": "10m_v_component_of_wind",
    "10v": "10m_v_component_of_wind",
    "sst": "sea_surface_temperature",
    "tcwv": "total_column_water_vapour",
    "tp": "total_precipitation",
    "lsm": "land_sea_mask",
    "orography": "geopotential_at_surface",
    "air_temperature": "temperature",
    "eastward_wind": "u_component_of_wind",
    "northward_wind": "v_component_of_wind",
}

#: Coordinate aliases → canonical dimension names.
DIM_ALIASES: dict[str, str] = {
    "lat": "latitude",
    "nav_lat": "latitude",
    "lon": "longitude",
    "nav_lon": "longitude",
    "valid_time": "time",
    "isobaricInhPa": "level",
    "pressure_level": "level",
    "plev": "level",
    "lev": "level",
    "pressure": "level",
}

SPATIAL_DIMS = ("latitude", "longitude")

#: Training-store attribute saying whether the data's atmosphere has a sun (False: the plain embedded
#: atmosphere, whose models then take no clock forcings by default; absent: real data, which has one).
SOLAR_FORCING_ATTR = "solar_forcing"


def canonical_name(name: str, mapping: dict[str, str] | None = None) -> str:
    """The canonical name of a source variable: the user's mapping first, then the ERA5 table."""
    if mapping and name in mapping:
        return mapping[name]
    return ERA5_SHORT_NAMES.get(name, name)


def channel_name(variable: str, level: int | None) -> str:
    """``temperature_850`` for a level variable, the variable's name for a surface one."""
    return variable if level is None else f"{variable}_{int(level)}"


def short_channel_name(channel: str) -> str:
    """``geopotential_500`` → ``z500``, ``2m_temperature`` → ``2t``: the ERA5 short name (plus the level), for
    table headers; a name without one is returned unchanged."""
    short = {canonical: code for code, canonical in ERA5_SHORT_NAMES.items() if len(code) <= 4}
    variable, _, level = channel.rpartition("_")
    if level.isdigit() and variable in short:
        return f"{short[variable]}{level}"
    return short.get(channel, channel)
