"""Physically plausible ranges of the canonical variables, checked at ingest before anything is written.

A value outside its variable's range is almost always a units or fill-value mistake (°C labelled K,
geopotential height labelled geopotential, hPa labelled Pa, 1e30 missing values), so ingest refuses it
with one line naming the variable, the channel, the range seen and what it looks like. The ranges are
generous: the extremes of the real atmosphere, with margin (ERA5's, and the embedded Held–Suarez
atmosphere's, fall well inside).

Geopotential depends on the level: ``Z ≈ g₀·h(p)`` with ``h`` the ICAO standard-atmosphere height of the
pressure level, and a channel is plausible within ``g₀·(h ± 4 km)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import UserError
from pipeline.weather.units import G0

FILL_LIKE = 1e20  # values this large are fill values, never data


@dataclass(frozen=True)
class Plausible:
    """``low ≤ value ≤ high`` in the canonical units; ``looks_like`` names the usual mistake and its range."""

    low: float
    high: float
    looks_like: tuple[tuple[float, float, str], ...] = ()


RANGES: dict[str, Plausible] = {
    "temperature": Plausible(150.0, 350.0, ((-100.0, 80.0, "°C, not K"),)),
    "2m_temperature": Plausible(170.0, 345.0, ((-100.0, 80.0, "°C, not K"),)),
    "2m_dewpoint_temperature": Plausible(150.0, 340.0, ((-120.0, 70.0, "°C, not K"),)),
    "sea_surface_temperature": Plausible(260.0, 320.0, ((-5.0, 45.0, "°C, not K"),)),
    "u_component_of_wind": Plausible(-200.0, 200.0),
    "v_component_of_wind": Plausible(-200.0, 200.0),
    "10m_u_component_of_wind": Plausible(-120.0, 120.0),
    "10m_v_component_of_wind": Plausible(-120.0, 120.0),
    "vertical_velocity": Plausible(-100.0, 100.0),
    "specific_humidity": Plausible(-1e-4, 0.06, ((0.0, 60.0, "g kg⁻¹, not kg kg⁻¹"),)),
    "relative_humidity": Plausible(-5.0, 160.0),
    "vorticity": Plausible(-0.05, 0.05),
    "divergence": Plausible(-0.05, 0.05),
    "surface_pressure": Plausible(3.0e4, 1.15e5, ((300.0, 1150.0, "hPa, not Pa"),)),
    "mean_sea_level_pressure": Plausible(8.0e4, 1.15e5, ((800.0, 1150.0, "hPa, not Pa"),)),
    "total_column_water_vapour": Plausible(-1.0, 120.0),
    "total_precipitation_6hr": Plausible(-1e-3, 1.0, ((1.0, 1000.0, "mm, not m"),)),
    "total_precipitation": Plausible(-1e-3, 5.0, ((5.0, 5000.0, "mm, not m"),)),
    "land_sea_mask": Plausible(-1e-6, 1.0 + 1e-6),
    "geopotential_at_surface": Plausible(-1000.0 * G0, 9000.0 * G0, ((-1000.0, 9000.0, "metres, not m² s⁻²"),)),
}
GEOPOTENTIAL_BAND_M = 4000.0


def standard_height_m(level_hpa: float) -> float:
    """ICAO standard-atmosphere height of a pressure level (troposphere formula, extended above; ≲ 1 km off
    at 10 hPa, which the band absorbs)."""
    return 44330.8 * (1.0 - (level_hpa / 1013.25) ** 0.190263)


def plausible_range(variable: str, level: int | None) -> Plausible | None:
    """The range of ``variable`` (at ``level`` hPa for geopotential), or None for a variable with none."""
    if variable == "geopotential" and level is not None:
        h = standard_height_m(float(level))
        return Plausible(G0 * (h - GEOPOTENTIAL_BAND_M), G0 * (h + GEOPOTENTIAL_BAND_M),
                         ((h - GEOPOTENTIAL_BAND_M, h + GEOPOTENTIAL_BAND_M,
                           "geopotential height in metres, not geopotential (m² s⁻²); label it `units: m`"),))
    return RANGES.get(variable)


def check_plausible(variable: str, channel: str, level: int | None, low: float, high: float, *,
                    path: str | None) -> None:
    """Raise a UserError when the values ``low … high`` of ``channel`` cannot be ``variable`` in its units."""
    if max(abs(low), abs(high)) >= FILL_LIKE:
        raise UserError(f"variable {variable!r} ({channel}): values up to {max(abs(low), abs(high)):.3g} look like "
                        "a fill value, not data; declare it as missing (`_FillValue` / `missing_value`) and mark the "
                        "variable `masked: true` if it has gaps", path=path)
    rule = plausible_range(variable, level)
    if rule is None or rule.low <= low <= high <= rule.high:
        return
    seen = f"values {low:.4g}…{high:.4g}"
    for lo, hi, what in rule.looks_like:
        if lo <= low <= high <= hi:
            raise UserError(f"variable {variable!r} ({channel}): {seen} look like {what}; fix the `units:` of the "
                            "source", path=path)
    raise UserError(f"variable {variable!r} ({channel}): {seen} lie outside the plausible {rule.low:.4g}…"
                    f"{rule.high:.4g} (canonical units); check the units and fill values of the source", path=path)
