"""Small synthetic ERA5-like datasets for weather tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def era5_like(
    *, times: int = 12, step: str = "6h", start: str = "2020-01-01", nlat: int = 8, nlon: int = 16,
    levels: tuple[int, ...] = (500, 850), seed: int = 0, lat_descending: bool = True, lon_180: bool = False,
) -> xr.Dataset:
    """ERA5-style dataset: short names (t, z, u, t2m), latitude 90→-90, ERA5 units, ``level`` in hPa."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(start, periods=times, freq=step)
    dlat = 180.0 / nlat
    lat = -90 + dlat * (np.arange(nlat) + 0.5)
    if lat_descending:
        lat = lat[::-1]
    lon = np.arange(nlon) * 360.0 / nlon
    if lon_180:
        lon = np.where(lon >= 180, lon - 360, lon)
        lon = np.sort(lon)
    shape3 = (times, len(levels), nlat, nlon)
    shape2 = (times, nlat, nlon)
    ds = xr.Dataset(
        {
            "t": (("time", "level", "latitude", "longitude"), (250 + 10 * rng.standard_normal(shape3)).astype("f4"), {"units": "K"}),
            "z": (("time", "level", "latitude", "longitude"), (50000 + 1000 * rng.standard_normal(shape3)).astype("f4"), {"units": "m**2 s**-2"}),
            "u": (("time", "level", "latitude", "longitude"), (5 * rng.standard_normal(shape3)).astype("f4"), {"units": "m s**-1"}),
            "t2m": (("time", "latitude", "longitude"), (280 + 5 * rng.standard_normal(shape2)).astype("f4"), {"units": "K"}),
            "lsm": (("latitude", "longitude"), (rng.random((nlat, nlon)) > 0.5).astype("f4"), {"units": "(0 - 1)"}),
        },
        coords={
            "time": time,
            "level": ("level", np.asarray(levels, np.int32), {"units": "millibars"}),
            "latitude": ("latitude", lat, {"units": "degrees_north"}),
            "longitude": ("longitude", lon, {"units": "degrees_east"}),
        },
    )
    return ds


