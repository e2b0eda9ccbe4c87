"""Regridding and regional cuts that respect the domain: conservative and bilinear at any ratio, global only
when the source is global, a box across 0° kept contiguous."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.errors import UserError
from pipeline.geo import GridExtent, contiguous_longitudes
from pipeline.weather.recipe import RegionSpec, RegridSpec
from pipeline.weather.regrid import cut_region, regrid


def _grid(lat: np.ndarray, lon: np.ndarray, values: np.ndarray) -> xr.Dataset:
    return xr.Dataset({"x": (("time", "latitude", "longitude"), values[None].astype("f8"))},
                      coords={"time": pd.date_range("2020-01-01", periods=1), "latitude": lat, "longitude": lon})


def _area_mean(ds: xr.Dataset) -> float:
    """Exact cell-area-weighted mean (weights Δ sin φ per row), for grids of uniform latitude spacing."""
    lat = ds["latitude"].values
    half = np.median(np.diff(lat)) / 2
    w = np.sin(np.deg2rad(np.clip(lat + half, -90, 90))) - np.sin(np.deg2rad(np.clip(lat - half, -90, 90)))
    return float((ds["x"].values[0] * w[:, None]).sum() / (w.sum() * ds.sizes["longitude"]))


GLOBAL_LAT = -90 + 1.5 * (np.arange(120) + 0.5)
GLOBAL_LON = 1.5 * np.arange(240)


def test_conservative_global_2x_is_the_exact_block_mean_and_any_ratio_conserves_the_mean():
    """Factor 2 on a 1.5° global grid equals the exact area-weighted 2×2 block mean everywhere (the polar
    rows and the 0° column too); a non-integer ratio (2.25°) conserves the global mean to 1e-12."""
    rng = np.random.default_rng(0)
    field = rng.standard_normal((120, 240)) + np.cos(np.deg2rad(GLOBAL_LAT))[:, None] * 30
    ds = _grid(GLOBAL_LAT, GLOBAL_LON, field)
    out = regrid(ds, RegridSpec(method="conservative", factor=2))
    assert out.sizes == {"time": 1, "latitude": 60, "longitude": 120}
    assert out["latitude"].values[0] == pytest.approx(-88.5) and out["longitude"].values[0] == 0.0
    # cell centred on 0° spans −1.5…1.5: the source cells at 0° and at 358.5°/1.5° (halves) by periodicity
    w = np.sin(np.deg2rad(GLOBAL_LAT + 0.75)) - np.sin(np.deg2rad(GLOBAL_LAT - 0.75))
    cols = field[:2, [239, 0, 1]] * np.array([0.5, 1.0, 0.5])
    expected = (cols * w[:2, None]).sum() / (w[:2].sum() * 2.0)
    assert float(out["x"].values[0, 0, 0]) == pytest.approx(expected, rel=1e-12)
    odd = regrid(ds, RegridSpec(method="conservative", resolution_deg=2.25))
    assert odd.sizes["latitude"] == 80 and odd.sizes["longitude"] == 160
    assert _area_mean(odd) == pytest.approx(_area_mean(ds), abs=1e-12)


def test_regional_regrid_stays_inside_the_domain_and_never_wraps_the_globe():
    """A 33×49 box across 0° (−10…2 … at 0.25°) regrids onto a grid inside its own extent, at any ratio: no
    longitude near 180° appears, a plane in (lat, lon) is reproduced exactly by bilinear, and conservative keeps
    a constant field constant with no NaN at the edges."""
    lat = np.linspace(48.0, 56.0, 33)
    lon = np.linspace(-10.0, 2.0, 49)
    plane = 3.0 * lat[:, None] - 2.0 * lon[None, :]
    ds = _grid(lat, lon, plane)
    for method, resolution in (("bilinear", 0.7), ("conservative", 0.7), ("conservative", 1.0)):
        out = regrid(ds, RegridSpec(method=method, resolution_deg=resolution))
        extent = GridExtent.of(lat, lon)
        assert out["longitude"].values.min() >= extent.lon_west and out["longitude"].values.max() <= extent.lon_east
        assert out["latitude"].values.min() >= extent.lat_min and out["latitude"].values.max() <= extent.lat_max
        assert np.all(np.diff(out["longitude"].values) > 0) and np.isfinite(out["x"].values).all()
        if method == "bilinear":
            expected = 3.0 * out["latitude"].values[:, None] - 2.0 * out["longitude"].values[None, :]
            np.testing.assert_allclose(out["x"].values[0], expected, atol=1e-9)
    ones = regrid(_grid(lat, lon, np.ones((33, 49))), RegridSpec(method="conservative", factor=3))
    np.testing.assert_allclose(ones["x"].values, 1.0, atol=1e-12)


def test_bilinear_global_is_periodic_across_the_seam():
    """On a global source, bilinear interpolates across 0°: sin(λ) is reproduced near 0° and 359°."""
    field = np.broadcast_to(np.sin(np.deg2rad(GLOBAL_LON))[None, :], (120, 240))
    out = regrid(_grid(GLOBAL_LAT, GLOBAL_LON, field), RegridSpec(method="bilinear", resolution_deg=0.9))
    lon = out["longitude"].values
    np.testing.assert_allclose(out["x"].values[0, 50], np.sin(np.deg2rad(lon)), atol=2e-4)
    assert out.sizes["longitude"] == 400 and np.isfinite(out["x"].values).all()


def test_masked_values_stay_missing_only_where_most_of_a_target_cell_is_missing():
    """Conservative regridding of a field with NaN (sea-surface temperature over land): a target cell is NaN
    only when under half of it is valid, and valid cells average only the valid parts."""
    lat = np.linspace(-60, 60, 41)
    lon = np.arange(0, 360, 3.0)
    field = np.full((41, 120), 290.0)
    field[:, :60] = np.nan  # the western half is land
    out = regrid(_grid(lat, lon, field), RegridSpec(method="conservative", factor=2))
    values = out["x"].values[0]
    assert np.isnan(values).any() and np.isfinite(values).any()
    np.testing.assert_allclose(values[np.isfinite(values)], 290.0)


@pytest.mark.parametrize("box", [(-10.0, 2.0), (350.0, 2.0)])
def test_a_box_across_greenwich_is_cut_contiguous(box):
    """From a [0, 360) global source, ``longitude: [-10, 2]`` or ``[350, 2]`` gives −10 … 2 ascending with the
    source's values, and a point east of 0° keeps its value."""
    lon = np.arange(0, 360, 0.5)
    lat = np.arange(40.0, 60.1, 0.5)
    values = lat[:, None] * 1000 + lon[None, :]
    cut = cut_region(_grid(lat, lon, values), RegionSpec(latitude=(45, 55), longitude=box))
    assert cut["longitude"].values[0] == -10.0 and cut["longitude"].values[-1] == 2.0
    assert np.all(np.diff(cut["longitude"].values) == 0.5)
    assert float(cut["x"].sel(latitude=50.0, longitude=-10.0)[0]) == 50_000 + 350.0
    assert float(cut["x"].sel(latitude=50.0, longitude=1.0)[0]) == 50_000 + 1.0
    assert cut["latitude"].values[[0, -1]].tolist() == [45.0, 55.0]


def test_a_box_outside_the_source_is_one_line_naming_the_domain():
    """A box that misses a regional source is a UserError naming the source's domain."""
    ds = _grid(np.linspace(48, 56, 9), np.linspace(-10, 2, 13), np.zeros((9, 13)))
    with pytest.raises(UserError, match=r"its domain: lat 47.5…56.5, lon -10.5…2.5"):
        cut_region(ds, RegionSpec(latitude=(10, 20), longitude=(100, 120)))


def test_longitude_convention_of_regional_sources_is_kept():
    """A regional source already ascending keeps its own values; a [0, 360) file of a box across 0° (0…2 then
    350…359.75) becomes one run −10 … 2; a global grid is [0, 360)."""
    own = np.arange(-10.0, 2.01, 0.25)
    np.testing.assert_array_equal(contiguous_longitudes(own), own)
    seam = np.r_[np.arange(0, 2.01, 0.25), np.arange(350, 360, 0.25)]
    assert np.sort(contiguous_longitudes(seam))[[0, -1]].tolist() == [-10.0, 2.0]
    glob = np.arange(-180, 180, 1.5)
    fixed = contiguous_longitudes(glob)
    assert fixed.min() == 0.0 and fixed.max() == 358.5
    pacific = np.r_[np.arange(170.0, 180.0), np.arange(-180.0, -169.0)]
    assert np.sort(contiguous_longitudes(pacific))[[0, -1]].tolist() == [170.0, 190.0]


def test_recipe_regrid_needs_exactly_one_target():
    """`regrid` takes `factor` or `resolution_deg`, not both and not neither."""
    with pytest.raises(ValueError, match="exactly one"):
        RegridSpec(method="bilinear")
    with pytest.raises(ValueError, match="exactly one"):
        RegridSpec(method="conservative", factor=2, resolution_deg=1.0)
    with pytest.raises(ValueError, match="south < north"):
        RegionSpec(latitude=(60, 40), longitude=(0, 10))
