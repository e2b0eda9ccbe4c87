"""Ingest end to end: store layout, statistics, time selection, regridding, CLI, Dask cluster."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from pipeline.cli import main
from pipeline.weather.ingest import ingest
from pipeline.weather.recipe import load_recipe
from pipeline.weather.store import channel_names, load_stats, stack_channels
from tests.pipeline.weather.synthetic import era5_like


def test_store_layout_stats_and_provenance(tmp_path, write_nc, write_recipe):
    """Canonical names and dims, latitude ascending, training chunks, per-channel mean/std/diff-std
    equal to numpy's, statics kept, provenance recorded."""
    src = era5_like(times=10)
    path = write_nc(src)
    recipe = write_recipe([path], {"temperature": {"levels": [500, 850]}, "2m_temperature": {}},
                          static=["land_sea_mask"], chunks={"time": 3})
    out = ingest(load_recipe(recipe), tmp_path / "out.zarr", progress=False)
    ds = xr.open_zarr(out)
    assert set(ds.data_vars) == {"temperature", "2m_temperature", "land_sea_mask"}
    assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
    assert ds["land_sea_mask"].dims == ("latitude", "longitude")
    assert ds["temperature"].encoding["chunks"] == (3, 2, 8, 16)
    assert np.all(np.diff(ds["latitude"].values) > 0)
    stats = load_stats(ds)
    assert stats["channels"] == channel_names(ds) == ["2m_temperature", "temperature_500", "temperature_850"]
    t850 = src["t"].sel(level=850).values.astype("f8")
    assert stats["mean"]["temperature_850"] == pytest.approx(t850.mean(), rel=1e-6)
    assert stats["std"]["temperature_850"] == pytest.approx(t850.std(), rel=1e-6)
    assert stats["diff_std"]["temperature_850"] == pytest.approx(np.diff(t850, axis=0).std(), rel=1e-6)
    assert stats["time_step"] == "6h"
    prov = ds.attrs["provenance"]
    assert prov["sources"] == [str(path)] and "code_version" in prov and prov["recipe"]["variables"]
    stacked = stack_channels(ds)
    assert stacked.dims == ("time", "channel", "latitude", "longitude")
    np.testing.assert_array_equal(stacked.sel(channel="temperature_850").values, ds["temperature"].sel(level=850).values)


def test_time_selection_picks_instants_on_the_step_grid(tmp_path, write_nc, write_recipe):
    """A 12 h step over 6-hourly input keeps every other instant unchanged (no averaging)."""
    src = era5_like(times=12)
    path = write_nc(src)
    recipe = write_recipe([path], time={"start": "2020-01-01T06", "end": "2020-01-03T06", "step": "12h"})
    ds = xr.open_zarr(ingest(load_recipe(recipe), tmp_path / "o.zarr", progress=False))
    assert [str(t)[:13] for t in ds["time"].values] == [
        "2020-01-01T06", "2020-01-01T18", "2020-01-02T06", "2020-01-02T18", "2020-01-03T06"]
    np.testing.assert_array_equal(ds["2m_temperature"].isel(time=1).values, src["t2m"].isel(time=3).values[::-1])
    assert ds.attrs["normalization"]["time_step"] == "12h"


def test_regrid_in_recipe_bilinear_and_any_coarsening_ratio(tmp_path, write_nc, write_recipe):
    """Bilinear regridding lands on the requested global grid; a coarsening factor that does not divide the
    grid (3 on 8×16) is fine: whole cells tile the sphere."""
    path = write_nc(era5_like(times=4))
    recipe = write_recipe([path], regrid={"method": "bilinear", "resolution_deg": 45.0})
    ds = xr.open_zarr(ingest(load_recipe(recipe), tmp_path / "b.zarr", progress=False))
    assert ds.sizes["latitude"] == 4 and ds.sizes["longitude"] == 8
    assert ds["latitude"].values.tolist() == [-67.5, -22.5, 22.5, 67.5]
    assert np.isfinite(ds["temperature"].values).all()
    odd = write_recipe([path], regrid={"method": "conservative", "factor": 3}, name="odd.yaml")
    ds = xr.open_zarr(ingest(load_recipe(odd), tmp_path / "c.zarr", progress=False))
    assert ds.sizes["latitude"] == 3 and ds.sizes["longitude"] == 5
    assert np.isfinite(ds["temperature"].values).all()


def test_regional_recipe_cuts_a_box_subsets_and_records_the_domain(tmp_path, write_nc, write_recipe):
    """A recipe with a lat/lon box across 0°, one surface variable, a time range and static fields (ERA5's
    `lsm` and surface `z`) ingests to a contiguous −10…2 domain that the store records."""
    src = era5_like(times=8, nlat=72, nlon=144)  # 2.5° global, [0, 360)
    src["z_sfc"] = (src["lsm"] * 9.81 * 300).assign_attrs(units="m**2 s**-2")
    path = write_nc(src.drop_vars(["z"]).rename(z_sfc="z"))
    recipe = write_recipe(
        [path], {"2m_temperature": {}}, static=["land_sea_mask", "geopotential_at_surface"],
        region={"latitude": [40, 60], "longitude": [-10, 2]},
        time={"start": "2020-01-01T06", "end": "2020-01-02T12"},
    )
    ds = xr.open_zarr(ingest(load_recipe(recipe), tmp_path / "r.zarr", progress=False))
    lon = ds["longitude"].values
    assert lon.tolist() == [-10.0, -7.5, -5.0, -2.5, 0.0] and np.all(np.diff(lon) > 0)
    assert set(ds.data_vars) == {"2m_temperature", "land_sea_mask", "geopotential_at_surface"}
    assert ds.sizes["time"] == 6 and ds["latitude"].values.min() >= 40
    domain = ds.attrs["domain"]
    assert domain["kind"] == "regional" and domain["lon_west"] == pytest.approx(-11.25)
    assert domain["lon_east"] == pytest.approx(1.25)
    west = src["t2m"].sel(longitude=350.0).isel(time=1).values[::-1]
    np.testing.assert_allclose(ds["2m_temperature"].sel(longitude=-10.0).isel(time=0).values,
                               west[(src["latitude"].values[::-1] >= 40) & (src["latitude"].values[::-1] <= 60)])


def test_cli_ingest_prints_summary_and_bad_input_exits_2_with_one_line(tmp_path, write_nc, write_recipe, capsys):
    """`velocast ingest weather` writes the store and prints channels; a bad recipe value exits 2, one line."""
    path = write_nc(era5_like(times=4))
    recipe = write_recipe([path])
    with pytest.raises(SystemExit) as done:
        main(["ingest", "weather", str(recipe), "--out", str(tmp_path / "o.zarr"), "--no-progress"])
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "temperature_850" in printed and "3 channels" in printed
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "ingest", "weather", str(recipe), "--out", str(tmp_path / "x.zarr"),
         "--set", "time.step=-3h"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "time.step" in lines[0] and "Traceback" not in proc.stderr


def test_ingest_runs_on_an_existing_dask_scheduler(tmp_path, write_nc, write_recipe):
    """--dask-address: the ingest runs on a distributed scheduler (an in-process LocalCluster)."""
    from distributed import LocalCluster

    path = write_nc(era5_like(times=6))
    recipe = write_recipe([path])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        out = ingest(load_recipe(recipe), tmp_path / "d.zarr", dask_address=cluster.scheduler_address, progress=False)
    ds = xr.open_zarr(out)
    assert ds.sizes["time"] == 6 and "temperature_500" in ds.attrs["normalization"]["mean"]


def test_netcdf_glob_and_local_zarr_sources_with_aliased_names(tmp_path, write_nc, write_recipe):
    """A glob over NetCDF files split in time is combined; a Zarr source with lat/lon names is renamed."""
    src = era5_like(times=8)
    write_nc(src.isel(time=slice(0, 4)), "part-1.nc")
    write_nc(src.isel(time=slice(4, 8)), "part-2.nc")
    recipe = write_recipe([str(tmp_path / "part-*.nc")])
    ds = xr.open_zarr(ingest(load_recipe(recipe), tmp_path / "g.zarr", progress=False))
    assert ds.sizes["time"] == 8
    np.testing.assert_array_equal(ds["2m_temperature"].values, src["t2m"].values[:, ::-1])
    zsrc = tmp_path / "src.zarr"
    src.rename(latitude="lat", longitude="lon").to_zarr(zsrc, zarr_format=3, consolidated=False)
    ds2 = xr.open_zarr(ingest(load_recipe(write_recipe([zsrc], name="z.yaml")), tmp_path / "z.zarr", progress=False))
    np.testing.assert_array_equal(ds2["temperature"].values, ds["temperature"].values)


def test_remote_url_source_through_fsspec_fake_bucket_in_memory(tmp_path, write_recipe):
    """A remote fsspec URL is read lazily (fake bucket: fsspec's in-memory filesystem, memory://)."""
    url = "memory://fake-bucket/era5.zarr"
    era5_like(times=4).to_zarr(url, zarr_format=3, consolidated=True, mode="w")
    recipe = write_recipe([{"path": url, "storage_options": {}}])
    ds = xr.open_zarr(ingest(load_recipe(recipe), tmp_path / "r.zarr", progress=False))
    assert ds.sizes["time"] == 4 and ds.attrs["provenance"]["sources"] == [url]


def test_shipped_recipes_validate():
    """Every example recipe in pipeline/weather/recipes/ (WB2 1.5°, builtin, GRIB) is a valid recipe."""
    from pathlib import Path

    from pipeline import weather

    recipes = sorted((Path(weather.__file__).parent / "recipes").glob("*.yaml"))
    assert {p.stem for p in recipes} >= {"wb2-era5-1.5deg", "held-suarez", "era5-grib-member"}
    for path in recipes:
        recipe = load_recipe(path)
        assert recipe.sources and recipe.variables
    wb2 = load_recipe(recipes[[p.stem for p in recipes].index("wb2-era5-1.5deg")])
    assert wb2.sources[0].path.startswith("gs://weatherbench2/") and wb2.sources[0].storage_options == {"token": "anon"}


def test_other_things_given_as_a_training_store_are_named(tmp_path):
    """A file, a forecast store (Icechunk), a protein structure store or a Zarr store without time given as the
    training store: each one line saying what it is."""
    from pipeline.errors import UserError
    from pipeline.weather.store import open_training_store

    (tmp_path / "file.zarr").write_text("x")
    (tmp_path / "fc.icechunk" / "refs").mkdir(parents=True)
    (tmp_path / "fc.icechunk" / "snapshots").mkdir()
    xr.Dataset({"coordinates": (("frame", "atom"), np.zeros((2, 3)))},
               attrs={"kind": "velocast.structures"}).to_zarr(tmp_path / "protein.zarr", zarr_format=3)
    xr.Dataset({"x": (("month",), np.zeros(3))}).to_zarr(tmp_path / "monthly.zarr", zarr_format=3)
    for name, words in [("file.zarr", "is a file"), ("fc.icechunk", "is a forecast store"),
                        ("protein.zarr", "is a protein structure store"), ("monthly.zarr", "has no time dimension"),
                        ("missing.zarr", "training store not found")]:
        with pytest.raises(UserError, match=words):
            open_training_store(tmp_path / name)
