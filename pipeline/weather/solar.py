"""Solar geometry shared by the model's clock forcings and the embedded atmosphere's diurnal heating.

* declination ``δ = 23.44° · sin(2π (284 + d)/365)`` for day of year ``d`` (Cooper 1969);
* ``cos ζ = sin φ sin δ + cos φ cos δ cos h`` with hour angle ``h = 2π·(UTC hours/24) + λ − π`` (no equation
  of time: under 17 minutes);
* the daily mean of ``max(0, cos ζ)``: ``(h₀ sin φ sin δ + cos φ cos δ sin h₀)/π`` with ``cos h₀ = −tan φ tan δ``;
* the Earth–Sun distance factor ``(r₀/r)² = 1 + 0.033 cos(2π d/365)``.

Arguments broadcast (NumPy), angles in radians.
"""

from __future__ import annotations

import numpy as np


def declination(day_of_year: np.ndarray | float) -> np.ndarray:
    """Solar declination δ (radians) on ``day_of_year``."""
    return np.deg2rad(23.44) * np.sin(2 * np.pi * (284.0 + np.asarray(day_of_year, dtype=np.float64)) / 365.0)


def cos_zenith_angle(sin_lat: np.ndarray, cos_lat: np.ndarray, lon_rad: np.ndarray, utc_hours: np.ndarray | float,
                     dec: np.ndarray | float) -> np.ndarray:
    """``cos ζ`` (negative at night) for latitude (as its sine and cosine), longitude, UTC hour and declination."""
    hour_angle = 2 * np.pi * np.asarray(utc_hours) / 24.0 + lon_rad - np.pi
    return sin_lat * np.sin(dec) + cos_lat * np.cos(dec) * np.cos(hour_angle)


def daily_mean_daylight(sin_lat: np.ndarray, cos_lat: np.ndarray, dec: np.ndarray | float) -> np.ndarray:
    """The daily mean of ``max(0, cos ζ)`` at a latitude (polar day and night included)."""
    h0 = np.arccos(np.clip(-sin_lat / np.maximum(cos_lat, 1e-12) * np.tan(dec), -1.0, 1.0))
    return (h0 * sin_lat * np.sin(dec) + cos_lat * np.cos(dec) * np.sin(h0)) / np.pi


def distance_factor(day_of_year: np.ndarray | float) -> np.ndarray:
    """``(r₀/r)²``, the Earth–Sun distance factor of the insolation."""
    return 1.0 + 0.033 * np.cos(2 * np.pi * np.asarray(day_of_year, dtype=np.float64) / 365.0)


__all__ = ["cos_zenith_angle", "daily_mean_daylight", "declination", "distance_factor"]
