"""Horizontal regridding on the canonical (ascending latitude, 0→360 longitude) grid.

* ``conservative``: integer-factor coarsening; each coarse cell is the area-weighted mean of its
  f×f fine cells, weights ∝ cos(latitude) (exact for cells of equal latitude spacing). The grid size
  must be divisible by the factor.
* ``bilinear``: linear in latitude and (periodic) longitude onto a regular grid of the given spacing,
  cell centres at −90+Δ/2 … 90−Δ/2 and 0 … 360−Δ.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.errors import UserError
from pipeline.weather.recipe import RegridSpec


def regrid(ds: xr.Dataset, spec: RegridSpec, *, path: str = "regrid") -> xr.Dataset:
    """Regrid every variable with latitude/longitude dimensions (others pass through)."""
    if spec.method == "conservative":
        return coarsen_conservative(ds, int(spec.factor or 1), path=path)
    return bilinear(ds, float(spec.resolution_deg or 0.0))


def coarsen_conservative(ds: xr.Dataset, factor: int, *, path: str = "regrid") -> xr.Dataset:
    """Area-weighted f×f block means (weights cos φ)."""
    nlat, nlon = ds.sizes["latitude"], ds.sizes["longitude"]
    if nlat % factor or nlon % factor:
        raise UserError(
            f"grid {nlat}×{nlon} is not divisible by the coarsening factor {factor}; "
            "use `regrid: {method: bilinear, resolution_deg: …}`",
            path=path,
        )
    weights = np.cos(np.deg2rad(ds["latitude"])).clip(min=0.0)
    weights = weights.broadcast_like(ds["longitude"]).astype(np.float64)
    coarse = {"latitude": factor, "longitude": factor}
    wsum = weights.coarsen(coarse).sum()
    out = {}
    for name, da in ds.data_vars.items():
        if "latitude" in da.dims and "longitude" in da.dims:
            mean = (da * weights).coarsen(coarse).sum() / wsum
            out[name] = mean.astype(da.dtype).assign_attrs(da.attrs)
        else:
            out[name] = da
    lat = ds["latitude"].coarsen(latitude=factor).mean()
    lon = ds["longitude"].coarsen(longitude=factor).mean()
    result = xr.Dataset(out, attrs=ds.attrs).assign_coords(latitude=lat.values, longitude=lon.values)
    return result.drop_vars([v for v in result.data_vars if v not in ds.data_vars])


def bilinear(ds: xr.Dataset, resolution_deg: float) -> xr.Dataset:
    """Bilinear interpolation onto a regular grid with spacing ``resolution_deg``."""
    n_lat = round(180.0 / resolution_deg)
    n_lon = round(360.0 / resolution_deg)
    lat = -90.0 + resolution_deg * (np.arange(n_lat) + 0.5)
    lon = resolution_deg * np.arange(n_lon)
    # Periodic longitude: pad one column on each side before interpolating.
    padded = xr.concat(
        [
            ds.isel(longitude=[-1]).assign_coords(longitude=ds["longitude"].values[[-1]] - 360.0),
            ds,
            ds.isel(longitude=[0]).assign_coords(longitude=ds["longitude"].values[[0]] + 360.0),
        ],
        dim="longitude",
        data_vars="minimal", coords="minimal", compat="override",
    )
    out = padded.interp(latitude=lat, longitude=lon, method="linear", kwargs={"fill_value": None})
    for name in out.data_vars:
        out[name] = out[name].astype(ds[name].dtype).assign_attrs(ds[name].attrs)
    return out
