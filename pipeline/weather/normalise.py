"""Normalise a dataset's coordinates to the canonical schema.

* dimension aliases (``lat``, ``lon``, ``isobaricInhPa``, ``valid_time`` …) → ``latitude``, ``longitude``,
  ``level``, ``time``;
* latitude ascending (−90 → 90); longitude ascending and contiguous: [0, 360) for a global grid, the
  source's own convention for a regional one, never a seam inside the domain (:mod:`pipeline.geo`);
* time → ``datetime64[ns]`` (UTC: timezone-aware values are converted, naive ones are taken as UTC);
* level → int32 hPa (Pa are converted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.errors import UserError
from pipeline.geo import contiguous_longitudes
from pipeline.weather import schema, units


def rename_dims(ds: xr.Dataset) -> xr.Dataset:
    """Rename known coordinate aliases to canonical names (only when the canonical one is absent)."""
    renames = {}
    for name in list(ds.dims) + list(ds.coords):
        target = schema.DIM_ALIASES.get(str(name))
        if target and target not in ds.variables and target not in renames.values():
            renames[name] = target
    # cfgrib: ``time`` is the analysis time and ``valid_time`` a coordinate; keep ``time`` as the dim.
    if "time" in ds.dims and "valid_time" in renames:
        renames.pop("valid_time")
    return ds.rename(renames) if renames else ds


def normalise(ds: xr.Dataset, *, path: str) -> xr.Dataset:
    """Canonical coordinates (see module docstring); ``path`` names the source in errors."""
    ds = rename_dims(ds)
    for dim in schema.SPATIAL_DIMS:
        if dim not in ds.dims:
            raise UserError(
                f"no {dim} dimension (dimensions: {', '.join(map(str, ds.dims))}); "
                "map it with `dims:` in the source", path=path,
            )
    lat = np.asarray(ds["latitude"].values, np.float64)
    if lat.size > 1 and lat[0] > lat[-1]:
        ds = ds.isel(latitude=slice(None, None, -1))
    lon = np.asarray(ds["longitude"].values, np.float64)
    relabelled = contiguous_longitudes(lon)
    if not np.array_equal(relabelled, lon) or np.any(np.diff(relabelled) <= 0):
        ds = ds.assign_coords(longitude=relabelled).sortby("longitude")
    ds = ds.assign_coords(
        latitude=ds["latitude"].astype(np.float64), longitude=ds["longitude"].astype(np.float64)
    )
    if "time" in ds.dims:
        ds = ds.assign_coords(time=_utc_times(ds["time"], path=path))
    if "level" in ds.dims:
        ds = ds.assign_coords(level=_hpa_levels(ds["level"], path=path))
    ds["latitude"].attrs.update(units="degrees_north", long_name="latitude")
    ds["longitude"].attrs.update(units="degrees_east", long_name="longitude")
    return ds


def _utc_times(time: xr.DataArray, *, path: str) -> np.ndarray:
    values = time.values
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[ns]")
    try:
        index = pd.DatetimeIndex(pd.to_datetime(values, utc=True)).tz_convert(None)
    except (TypeError, ValueError) as exc:
        raise UserError(f"time coordinate is not a date/time ({exc})", path=path) from None
    return index.values.astype("datetime64[ns]")


def _hpa_levels(level: xr.DataArray, *, path: str) -> np.ndarray:
    raw = level.attrs.get("units")
    values = np.asarray(level.values, np.float64)
    if raw is None:
        # No units: pressures above 1100 can only be Pa.
        factor = 0.01 if values.max(initial=0) > 1100 else 1.0
    else:
        conv = units.conversion(raw, "hPa")
        if conv is None:
            raise UserError(f"level: unknown units {raw!r} (expected hPa or Pa)", path=path)
        factor = conv[0]
    hpa = values * factor
    if not np.allclose(hpa, np.round(hpa), atol=1e-3):
        raise UserError(f"level: pressure levels {hpa.tolist()} hPa are not whole hPa", path=path)
    return np.round(hpa).astype(np.int32)
