"""Unit recognition and conversion to the canonical units of :mod:`pipeline.weather.schema`.

Conversions applied (anything else that differs is refused):

* geopotential height (m, gpm) → geopotential (m² s⁻²): × g₀ = 9.80665 m s⁻²
* °C → K: + 273.15
* hPa / mbar → Pa (pressure fields); Pa → hPa (the ``level`` coordinate)
* g kg⁻¹ → kg kg⁻¹: ÷ 1000
* mm → m (precipitation): ÷ 1000
"""

from __future__ import annotations

import re

G0 = 9.80665  # standard gravity, m s⁻² (WMO)

_ALIASES: dict[str, str] = {}


def _register(canonical: str, *spellings: str) -> None:
    for s in (canonical, *spellings):
        _ALIASES[_squash(s)] = canonical


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


_register("K", "kelvin", "degK", "deg_K", "degrees_kelvin")
_register("degC", "°C", "C", "celsius", "deg_C", "degrees_celsius", "degree_celsius")
_register("m**2 s**-2", "m2 s-2", "m^2 s^-2", "m2/s2", "m^2/s^2", "m**2/s**2", "m2s-2", "J kg**-1", "J/kg")
_register("m", "metre", "meter", "metres", "meters", "gpm", "geopotential metres", "m (gpm)")
_register("m s**-1", "m s-1", "m/s", "m s^-1", "meters per second", "metre per second", "ms-1")
_register("Pa", "pascal", "pascals")
_register("hPa", "millibars", "millibar", "mbar", "mb", "hectopascal", "hectopascals")
_register("Pa s**-1", "Pa s-1", "Pa/s")
_register("kg kg**-1", "kg kg-1", "kg/kg", "kg kg^-1")
_register("g kg**-1", "g kg-1", "g/kg")
_register("kg m**-2", "kg m-2", "kg/m2", "kg/m^2")
_register("s**-1", "s-1", "1/s", "s^-1")
_register("%", "percent")
_register("mm", "millimetres", "millimeters")
_register("1", "(0 - 1)", "0-1", "dimensionless", "fraction", "~", "")

# (from, to) → (scale, offset): canonical = value * scale + offset
_CONVERSIONS: dict[tuple[str, str], tuple[float, float]] = {
    ("m", "m**2 s**-2"): (G0, 0.0),
    ("degC", "K"): (1.0, 273.15),
    ("hPa", "Pa"): (100.0, 0.0),
    ("Pa", "hPa"): (0.01, 0.0),
    ("g kg**-1", "kg kg**-1"): (1e-3, 0.0),
    ("mm", "m"): (1e-3, 0.0),
    ("1", "kg kg**-1"): (1.0, 0.0),
    ("kg kg**-1", "1"): (1.0, 0.0),
}


def parse_units(text: str | None) -> str | None:
    """The recognised spelling of a units string, or ``None`` when unknown."""
    if text is None:
        return None
    return _ALIASES.get(_squash(str(text)))


def conversion(source_units: str | None, target_units: str) -> tuple[float, float] | None:
    """``(scale, offset)`` with canonical = value·scale + offset, or ``None`` when not convertible."""
    src, dst = parse_units(source_units), parse_units(target_units)
    if src is None or dst is None:
        return None
    if src == dst:
        return (1.0, 0.0)
    return _CONVERSIONS.get((src, dst))
