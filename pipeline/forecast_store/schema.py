"""The forecast-store schema: WeatherBench2 names, dims, units and the chunk layout.

A forecast store holds one Dataset whose data variables are either *level* variables with dims
``(init_time, lead_time, member, level, latitude, longitude)`` or *surface* variables with dims
``(init_time, lead_time, member, latitude, longitude)``. ``lead_time`` is a timedelta, ``init_time`` a
datetime64, ``member`` an integer index, ``level`` pressure in hPa, latitude ascending in degrees
north, longitude in degrees east (contiguous: [0, 360) for a global grid). The 2-D ``valid_time``
coordinate is ``init_time + lead_time``. Every variable carries ``units`` (and, for the known names, a CF
``standard_name``); the coordinates carry CF ``standard_name`` s (``forecast_reference_time``,
``forecast_period``, ``time``, ``realization``, ``air_pressure``, ``latitude``, ``longitude``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

SCHEMA_VERSION = 1
STORE_KIND = "velocast-forecast"

LEVEL_DIMS: tuple[str, ...] = ("init_time", "lead_time", "member", "level", "latitude", "longitude")
SURFACE_DIMS: tuple[str, ...] = ("init_time", "lead_time", "member", "latitude", "longitude")

# WeatherBench2 / ERA5 names -> (units, long name, CF standard name). Unknown names are allowed if they carry units.
KNOWN_VARIABLES: dict[str, tuple[str, str, str]] = {
    "temperature": ("K", "Temperature", "air_temperature"),
    "geopotential": ("m**2 s**-2", "Geopotential", "geopotential"),
    "u_component_of_wind": ("m s**-1", "U component of wind", "eastward_wind"),
    "v_component_of_wind": ("m s**-1", "V component of wind", "northward_wind"),
    "specific_humidity": ("kg kg**-1", "Specific humidity", "specific_humidity"),
    "vertical_velocity": ("Pa s**-1", "Vertical velocity", "lagrangian_tendency_of_air_pressure"),
    "surface_pressure": ("Pa", "Surface pressure", "surface_air_pressure"),
    "mean_sea_level_pressure": ("Pa", "Mean sea level pressure", "air_pressure_at_mean_sea_level"),
    "2m_temperature": ("K", "2 metre temperature", "air_temperature"),
    "10m_u_component_of_wind": ("m s**-1", "10 metre U wind component", "eastward_wind"),
    "10m_v_component_of_wind": ("m s**-1", "10 metre V wind component", "northward_wind"),
    "total_precipitation_6hr": ("m", "Total precipitation (6 h)", "lwe_thickness_of_precipitation_amount"),
    "geopotential_at_surface": ("m**2 s**-2", "Geopotential at the surface", "surface_geopotential"),
    "land_sea_mask": ("1", "Land-sea mask", "land_binary_mask"),
}

# CF attributes of the coordinates (WeatherBench2-style evaluation reads valid_time; CF tools read the rest)
COORD_ATTRS: dict[str, dict[str, str]] = {
    "init_time": {"standard_name": "forecast_reference_time", "long_name": "initialisation time"},
    "lead_time": {"standard_name": "forecast_period", "long_name": "lead time"},
    "valid_time": {"standard_name": "time", "long_name": "valid time (init_time + lead_time)"},
    "member": {"standard_name": "realization", "long_name": "ensemble member"},
    "level": {"standard_name": "air_pressure", "long_name": "pressure level", "units": "hPa", "positive": "down"},
    "latitude": {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"},
    "longitude": {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"},
}


def with_valid_time(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with the 2-D ``valid_time = init_time + lead_time`` coordinate (as WeatherBench2 derives it)."""
    if "valid_time" in ds.coords or "init_time" not in ds.coords or "lead_time" not in ds.coords:
        return ds
    valid = (ds["init_time"] + ds["lead_time"]).transpose("init_time", "lead_time", missing_dims="ignore")
    ds = ds.assign_coords(valid_time=valid)
    ds["valid_time"].attrs.update(COORD_ATTRS["valid_time"])
    return ds


@dataclass(frozen=True, kw_only=True)
class ChunkSpec:
    """Chunk layout: one init time, ``lead_block`` leads (0 = all), all members, one level, and a
    ``tile_lat`` × ``tile_lon`` spatial tile (0 = the whole axis).

    Default: 10 leads × all members × one level × 16×16 points (0.5 MB at 50 members). A point's
    plume reads ceil(leads/10) chunks and a map at one lead reads (nlat/16)·(nlon/16) chunks of one
    lead block: measured (tests/benchmarks/bench_chunking.py, docs/results/performance.md) within 2× of the best
    layout for points and ~2× faster than all-leads chunks for maps.
    """

    lead_block: int = 10
    tile_lat: int = 16
    tile_lon: int = 16

    def for_dims(self, dims: tuple[str, ...], sizes: dict[str, int]) -> tuple[int, ...]:
        """The chunk shape for a variable with ``dims`` and dimension ``sizes``."""
        rule = {
            "init_time": 1,
            "lead_time": self.lead_block or sizes["lead_time"],
            "member": sizes["member"],
            "level": 1,
            "latitude": self.tile_lat or sizes["latitude"],
            "longitude": self.tile_lon or sizes["longitude"],
        }
        return tuple(min(rule.get(d, sizes[d]), sizes[d]) for d in dims)

    def to_attrs(self) -> dict[str, int]:
        return {"lead_block": self.lead_block, "tile_lat": self.tile_lat, "tile_lon": self.tile_lon}


def _fail(message: str) -> None:
    from pipeline.errors import UserError

    raise UserError(message)


def normalise_cycle(ds: xr.Dataset) -> xr.Dataset:
    """Check ``ds`` is one forecast cycle in the store schema and return it in canonical form.

    Canonical form: an ``init_time`` dimension of length 1, dims in schema order, latitude ascending,
    longitude ascending and contiguous (global grids in [0, 360), a regional one in its own
    convention, see :mod:`pipeline.geo`), float32 data, ``units`` on every data variable.
    Raises :class:`~pipeline.errors.UserError` naming the problem.
    """
    import xarray as xr

    if not isinstance(ds, xr.Dataset):
        _fail(f"a forecast cycle must be an xarray.Dataset, got {type(ds).__name__}")
    if "init_time" not in ds.coords:
        _fail("the forecast cycle has no 'init_time' coordinate")
    if "init_time" not in ds.dims:
        ds = ds.expand_dims("init_time")
    if ds.sizes["init_time"] != 1:
        _fail(f"a cycle holds exactly one init_time, got {ds.sizes['init_time']}")
    if not np.issubdtype(ds["init_time"].dtype, np.datetime64):
        _fail("'init_time' must be a datetime64 coordinate")
    for name in ("lead_time", "member", "latitude", "longitude"):
        if name not in ds.dims:
            _fail(f"the forecast cycle has no '{name}' dimension (dims: {', '.join(map(str, ds.dims))})")
    if not np.issubdtype(ds["lead_time"].dtype, np.timedelta64):
        _fail("'lead_time' must be a timedelta64 coordinate (e.g. np.timedelta64(6, 'h') steps)")
    if len(ds.data_vars) == 0:
        _fail("the forecast cycle has no data variables")
    ds = ds.assign_coords(init_time=ds["init_time"].values.astype("datetime64[ns]"))
    ds = ds.assign_coords(lead_time=ds["lead_time"].values.astype("timedelta64[ns]"))
    if "member" not in ds.coords:
        ds = ds.assign_coords(member=np.arange(ds.sizes["member"]))
    from pipeline.geo import contiguous_longitudes

    lon = contiguous_longitudes(np.asarray(ds["longitude"].values, dtype="float64"))
    ds = ds.assign_coords(longitude=lon).sortby("longitude")
    if not (np.all(np.diff(ds["longitude"].values) > 0)):
        _fail("longitude has repeated values (modulo 360)")
    ds = ds.sortby("latitude")
    lat = ds["latitude"].values
    if lat.min() < -90 or lat.max() > 90 or not np.all(np.diff(lat) > 0):
        _fail("latitude must be distinct values within [-90, 90]")
    if "level" in ds.dims:
        ds = ds.sortby("level")
    out = {}
    for name, var in ds.data_vars.items():
        dims = tuple(str(d) for d in var.dims)
        if "level" in dims:
            want = LEVEL_DIMS
        else:
            want = SURFACE_DIMS
        if set(dims) != set(want):
            _fail(f"variable '{name}' has dims {dims}; expected {want} (level variables) or {SURFACE_DIMS}")
        var = var.transpose(*want).astype("float32")
        attrs = dict(var.attrs)
        if "units" not in attrs:
            if name in KNOWN_VARIABLES:
                attrs["units"] = KNOWN_VARIABLES[str(name)][0]
            else:
                _fail(f"variable '{name}' has no 'units' attribute")
        if name in KNOWN_VARIABLES:
            attrs.setdefault("long_name", KNOWN_VARIABLES[str(name)][1])
            attrs.setdefault("standard_name", KNOWN_VARIABLES[str(name)][2])
        var.attrs = attrs
        out[name] = var
    result = with_valid_time(xr.Dataset(out, attrs=dict(ds.attrs)))
    for name, cf in COORD_ATTRS.items():
        if name in result.coords:  # a level's own units are kept (hPa by default)
            kept = {"units": result[name].attrs["units"]} if name == "level" and "units" in result[name].attrs else {}
            result[name].attrs.update({**cf, **kept})
    return result


def layout_of(ds: xr.Dataset) -> dict[str, Any]:
    """The parts of a cycle that must match the store's layout (everything but init_time)."""
    return {
        "variables": {str(k): tuple(str(d) for d in v.dims) for k, v in ds.data_vars.items()},
        "coords": {
            name: np.asarray(ds[name].values)
            for name in ("lead_time", "member", "level", "latitude", "longitude")
            if name in ds.coords
        },
    }


def check_same_layout(store_ds: xr.Dataset, cycle: xr.Dataset) -> None:
    """Raise UserError if ``cycle`` does not match the store's variables and coordinates."""
    have, new = layout_of(store_ds), layout_of(cycle)
    if have["variables"] != new["variables"]:
        missing = sorted(set(have["variables"]) - set(new["variables"]))
        extra = sorted(set(new["variables"]) - set(have["variables"]))
        _fail(f"the cycle's variables differ from the store's (missing: {missing}, extra: {extra}); "
              "the first cycle defines the layout")
    for name, values in have["coords"].items():
        other = new["coords"].get(name)
        if other is None or other.shape != values.shape or not np.array_equal(other, values):
            _fail(f"the cycle's '{name}' coordinate differs from the store's; the first cycle defines the layout")


def parse_instant(value: str | np.datetime64) -> np.datetime64 | None:
    """An instant (UTC) as ``datetime64[ns]``, or None when it is not a time or lies outside the years
    1678–2262 that nanoseconds can hold (numpy alone would wrap ``99999-01-01`` round to 1793)."""
    import pandas as pd

    text = str(value).strip().removesuffix("Z").removesuffix("z")
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        return None
    if stamp is pd.NaT:
        return None
    return np.datetime64(stamp.tz_localize(None) if stamp.tzinfo else stamp, "ns")
