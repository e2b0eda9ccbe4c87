"""Query semantics checked against direct xarray computations on the same SYNTHETIC store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipeline.forecast_store import ForecastStore
from pipeline.forecast_store.query import QueryError, SnapshotReader


@pytest.fixture(scope="module")
def reader(small_store: Path) -> SnapshotReader:
    return SnapshotReader(ForecastStore.open(small_store))


@pytest.fixture(scope="module")
def truth(small_store: Path) -> xr.Dataset:
    return ForecastStore.open(small_store).dataset().load()


def test_point_nearest_matches_the_grid_value_statistics(reader: SnapshotReader, truth: xr.Dataset) -> None:
    """Nearest point: mean/spread(ddof=1)/quantiles/members equal numpy on the nearest grid column,
    and the latest cycle is the default; longitude -5 wraps to the nearest of 0/337.5."""
    res = reader.point(variable="temperature", level=850, lat=41.0, lon=-5.0, quantiles=[0.1, 0.5], members=True)
    i = int(np.argmin(np.abs(truth.latitude.values - 41.0)))
    col = truth["temperature"].sel(init_time="2020-01-01T06", level=850).isel(latitude=i)
    col = col.sel(longitude=0.0).values  # -5° is 5° from 0° and 17.5° from 337.5°
    np.testing.assert_allclose(res.fields["mean"][1], col.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(res.fields["spread"][1], col.std(axis=1, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(res.fields["q50"][1], np.median(col, axis=1), rtol=1e-6)
    np.testing.assert_array_equal(res.fields["members"][1], col)
    assert res.meta["units"] == "K" and res.meta["init_time"] == "2020-01-01T06:00:00"
    assert res.meta["grid_lon"] == [0.0]


def test_point_bilinear_interpolates_across_the_dateline(reader: SnapshotReader, truth: xr.Dataset) -> None:
    """Bilinear at lon 348.75 (halfway between 337.5 and 0) on a grid latitude is the mean of the two columns."""
    lat = float(truth.latitude.values[3])
    res = reader.point(variable="2m_temperature", lat=lat, lon=348.75, method="bilinear", members=True,
                       init_time="2020-01-01T00")
    f = truth["2m_temperature"].sel(init_time="2020-01-01T00").isel(latitude=3)
    want = 0.5 * (f.sel(longitude=337.5).values + f.sel(longitude=0.0).values)
    np.testing.assert_allclose(res.fields["members"][1], want, rtol=1e-6)


def test_region_crossing_zero_longitude_and_probability(reader: SnapshotReader, truth: xr.Dataset) -> None:
    """Box 330..30 selects longitudes 337.5, 0, 22.5 in that order; the probability is the member fraction."""
    res = reader.region(variable="temperature", level=500, lat_min=-20, lat_max=40, lon_min=330, lon_max=30,
                        lead="12h", threshold=250.0, direction="exceed")
    assert res.coords["longitude"].tolist() == [337.5, 0.0, 22.5]
    sub = truth["temperature"].sel(init_time="2020-01-01T06", level=500, lead_time=np.timedelta64(12, "h"))
    sub = sub.sel(latitude=res.coords["latitude"], longitude=res.coords["longitude"]).values
    np.testing.assert_allclose(res.fields["probability"][1], (sub > 250.0).mean(axis=0))
    np.testing.assert_allclose(res.fields["mean"][1], sub.mean(axis=0), rtol=1e-6)
    below = reader.region(variable="temperature", level=500, lat_min=-20, lat_max=40, lon_min=-30, lon_max=30,
                          lead=12, threshold=250.0, direction="below", stats=False)
    np.testing.assert_allclose(below.fields["probability"][1], (sub < 250.0).mean(axis=0))
    assert "mean" not in below.fields and below.meta["threshold_units"] == "K"


def test_point_probability_over_leads(reader: SnapshotReader, truth: xr.Dataset) -> None:
    """P(x > t) at a point per lead equals the member fraction at the nearest grid point."""
    res = reader.point_probability(variable="2m_temperature", lat=0, lon=90, threshold=290.0)
    col = truth["2m_temperature"].sel(init_time="2020-01-01T06").sel(latitude=0, longitude=90, method="nearest")
    np.testing.assert_allclose(res.fields["probability"][1], (col.values > 290.0).mean(axis=1))


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"variable": "nope", "lat": 0, "lon": 0}, "variable"),
        ({"variable": "temperature", "lat": 0, "lon": 0}, "level"),
        ({"variable": "temperature", "level": 123, "lat": 0, "lon": 0}, "level"),
        ({"variable": "2m_temperature", "level": 500, "lat": 0, "lon": 0}, "level"),
        ({"variable": "2m_temperature", "lat": 91, "lon": 0}, "lat"),
        ({"variable": "2m_temperature", "lat": float("nan"), "lon": 0}, "lat"),
        ({"variable": "2m_temperature", "lat": 0, "lon": 1e9}, "lon"),
        ({"variable": "2m_temperature", "lat": 0, "lon": 0, "init_time": "2021-13-01"}, "init_time"),
        ({"variable": "2m_temperature", "lat": 0, "lon": 0, "init_time": "1999-01-01"}, "init_time"),
        ({"variable": "2m_temperature", "lat": 0, "lon": 0, "quantiles": [1.5]}, "quantiles"),
    ],
)
def test_bad_queries_raise_clear_query_errors(reader: SnapshotReader, kwargs: dict, param: str) -> None:
    """Unknown variables, missing/unknown levels, out-of-range coordinates and bad times are QueryErrors."""
    with pytest.raises(QueryError) as info:
        reader.point(**kwargs)
    assert info.value.param == param


def test_outputs_carry_units_in_json_csv_and_netcdf(reader: SnapshotReader, tmp_path: Path) -> None:
    """Every output format names the units."""
    res = reader.point(variable="geopotential", level=500, lat=10, lon=10, quantiles=[0.9], members=True)
    doc = json.loads(res.to_json())
    assert doc["units"] == "m**2 s**-2" and doc["fields"]["q90"]["units"] == "m**2 s**-2"
    assert doc["lead_time_units"] == "hours" and doc["coords"]["lead_time"] == [6.0, 12.0, 18.0, 24.0]
    csv = res.to_csv()
    assert "# units: m**2 s**-2" in csv and "lead_time,mean,spread,q90,members_m0" in csv
    (tmp_path / "p.nc").write_bytes(res.to_netcdf())
    nc = xr.open_dataset(tmp_path / "p.nc")
    assert nc["mean"].attrs["units"] == "m**2 s**-2" and nc.sizes["member"] == 5


@pytest.fixture(scope="module")
def regional_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A limited-area SYNTHETIC store: latitudes 10…60, longitudes 0…25 cut from a 5° global cycle."""
    from pipeline.forecast_store import synthetic_forecast

    from fs_helpers import PROV

    ds = synthetic_forecast("2020-01-01T00", members=3, leads=2, grid=(72, 36), levels=(500,))
    ds = ds.sel(latitude=slice(10, 60), longitude=slice(0, 25))
    path = tmp_path_factory.mktemp("regional") / "regional.icechunk"
    ForecastStore.create(path).append_cycle(ds, provenance=PROV)
    return path


def test_regional_store_refuses_points_and_boxes_outside_its_domain(regional_store: Path) -> None:
    """A limited-area store answers inside its grid (plus half a cell) and refuses a point or box outside
    with a message naming the domain — never the nearest corner point; global stores keep answering everywhere."""
    reader = SnapshotReader(ForecastStore.open(regional_store))
    assert not reader.extent.is_global and not reader.extent.periodic
    lats, lons = reader.lat, reader.lon
    inside = reader.point(variable="2m_temperature", lat=float(lats[2]), lon=float(lons[1]))
    assert inside.meta["grid_lat"] == [float(lats[2])]
    edge = reader.point(variable="2m_temperature", lat=float(lats[-1]) + 1.0, lon=float(lons[-1]) + 1.0)
    assert edge.meta["grid_lon"] == [float(lons[-1])]  # inside the half-cell margin
    for lat, lon in ((0.0, 10.0), (30.0, 100.0), (30.0, -20.0), (80.0, 10.0)):
        for method in ("nearest", "bilinear"):
            with pytest.raises(QueryError, match=r"outside this store's domain \(lat .*lon"):
                reader.point(variable="2m_temperature", lat=lat, lon=lon, method=method)
    with pytest.raises(QueryError, match="holds no grid point of this store's domain"):
        reader.region(variable="2m_temperature", lat_min=-40, lat_max=-20, lon_min=0, lon_max=20, lead="6h")


def test_regional_bilinear_clamps_at_the_edge_columns_instead_of_wrapping(regional_store: Path) -> None:
    """Bilinear on a limited-area grid interpolates between its own columns; just west of the first column
    it uses that column (a global grid would wrap round to 355°, which this store does not hold)."""
    reader = SnapshotReader(ForecastStore.open(regional_store))
    truth = ForecastStore.open(regional_store).dataset().load()["2m_temperature"].isel(init_time=0)
    lat, lon = float(reader.lat[3]), float(reader.lon[0]) - 1.0
    res = reader.point(variable="2m_temperature", lat=lat, lon=lon, method="bilinear")
    assert set(res.meta["grid_lon"]) <= {float(reader.lon[0]), float(reader.lon[1])}  # never 355°
    col = truth.sel(latitude=lat, longitude=float(reader.lon[0])).values.mean(axis=1)
    np.testing.assert_allclose(res.fields["mean"][1], col, rtol=1e-6)
    mid = reader.point(variable="2m_temperature", lat=lat, lon=float(reader.lon[1]) + 2.5, method="bilinear")
    pair = truth.sel(latitude=lat).isel(longitude=[1, 2]).values.mean(axis=1).mean(axis=-1)
    np.testing.assert_allclose(mid.fields["mean"][1], pair, rtol=1e-5)
