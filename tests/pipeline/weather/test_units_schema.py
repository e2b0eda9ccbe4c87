"""Units, canonical names and coordinate normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pipeline.errors import UserError
from pipeline.weather import normalise, schema, units
from tests.pipeline.weather.synthetic import era5_like


def test_geopotential_height_converts_with_standard_gravity():
    """Geopotential height in metres becomes geopotential via g0 = 9.80665."""
    assert units.conversion("m", "m**2 s**-2") == (pytest.approx(9.80665), 0.0)
    assert units.conversion("gpm", "m2 s-2") == (pytest.approx(9.80665), 0.0)


def test_celsius_and_pressure_conversions():
    """°C → K adds 273.15; hPa → Pa multiplies by 100; identical units are the identity."""
    assert units.conversion("degC", "K") == (1.0, 273.15)
    assert units.conversion("°C", "K") == (1.0, 273.15)
    assert units.conversion("millibars", "Pa") == (100.0, 0.0)
    assert units.conversion("Pa", "hPa") == (0.01, 0.0)
    assert units.conversion("m s**-1", "m/s") == (1.0, 0.0)


def test_unknown_or_incompatible_units_are_not_convertible():
    """Unknown spellings and dimensionally different units give no conversion."""
    assert units.conversion("furlongs per fortnight", "m s**-1") is None
    assert units.conversion("K", "m s**-1") is None


def test_era5_short_names_map_to_canonical_names_and_user_mapping_wins():
    """z/t/t2m map to WB2 names; a user mapping overrides the built-in table."""
    assert schema.canonical_name("z") == "geopotential"
    assert schema.canonical_name("t2m") == "2m_temperature"
    assert schema.canonical_name("msl") == "mean_sea_level_pressure"
    assert schema.canonical_name("z", {"z": "geopotential_at_surface"}) == "geopotential_at_surface"
    assert schema.channel_name("temperature", 850) == "temperature_850"


def test_normalise_flips_latitude_wraps_longitude_and_types_levels():
    """Latitude becomes ascending, longitude [-180,180) → [0,360) sorted, level int32 hPa, data follow."""
    ds = era5_like(lon_180=True, lat_descending=True)
    north_west = float(ds["t2m"].isel(time=0).sel(latitude=ds.latitude.max(), longitude=-22.5))
    out = normalise.normalise(ds, path="x.nc")
    lat, lon = out["latitude"].values, out["longitude"].values
    assert np.all(np.diff(lat) > 0)
    assert lon.min() >= 0 and lon.max() < 360 and np.all(np.diff(lon) > 0)
    assert out["level"].dtype == np.int32
    assert float(out["t2m"].isel(time=0).sel(latitude=lat.max(), longitude=337.5)) == north_west


def test_levels_in_pa_become_hpa():
    """A level coordinate in Pa is converted to integer hPa."""
    ds = era5_like().assign_coords(level=("level", [50000.0, 85000.0], {"units": "Pa"}))
    out = normalise.normalise(ds, path="x.nc")
    assert out["level"].values.tolist() == [500, 850]


def test_unknown_level_units_are_refused():
    """A level coordinate in unknown units is one clear error naming the file."""
    ds = era5_like().assign_coords(level=("level", [5.0, 8.5], {"units": "bananas"}))
    with pytest.raises(UserError, match=r"x\.nc: level: unknown units 'bananas'"):
        normalise.normalise(ds, path="x.nc")


def test_dimension_aliases_are_renamed():
    """lat/lon/plev aliases are renamed to the canonical dimension names."""
    ds = era5_like().rename(latitude="lat", longitude="lon", level="plev")
    out = normalise.normalise(ds, path="x.nc")
    assert {"latitude", "longitude", "level", "time"} <= set(out.dims)
    assert isinstance(out, xr.Dataset)
