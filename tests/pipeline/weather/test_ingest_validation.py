"""Ingest validation: every bad input is one clear UserError naming the file, the variable and the
problem, and a failed ingest leaves nothing at the output path. Inputs are damaged on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipeline.errors import UserError
from pipeline.weather.ingest import ingest
from pipeline.weather.recipe import load_recipe
from tests.pipeline.weather.synthetic import era5_like


def _run(recipe: Path, out: Path, **kw) -> Path:
    return ingest(load_recipe(recipe), out, progress=False, **kw)


def _assert_fails(recipe: Path, out: Path, pattern: str, **kw) -> str:
    with pytest.raises(UserError, match=pattern) as info:
        _run(recipe, out, **kw)
    message = str(info.value)
    assert "\n" not in message
    assert not out.exists(), "a failed ingest must leave nothing at the output path"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp")], "temp dir left behind"
    return message


def test_truncated_netcdf_is_a_clear_error(tmp_path, write_nc, write_recipe):
    """A NetCDF file cut in half is refused with the file named and 'corrupt or truncated'."""
    path = write_nc(era5_like())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    msg = _assert_fails(write_recipe([path]), tmp_path / "out.zarr", "corrupt or truncated")
    assert str(path) in msg


def test_truncated_classic_netcdf3_is_a_clear_error(tmp_path, write_recipe):
    """A NetCDF-3 file with its data cut short (it would still open, reading zeros) is refused."""
    path = tmp_path / "classic.nc"
    era5_like(times=40).to_netcdf(path, format="NETCDF3_64BIT")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.9)])
    _assert_fails(write_recipe([path]), tmp_path / "out.zarr", r"classic\.nc: truncated or corrupt NetCDF-3 file")


def test_garbage_file_is_a_clear_error(tmp_path, write_recipe):
    """A file that is not NetCDF at all is refused naming the file."""
    path = tmp_path / "junk.nc"
    path.write_bytes(b"this is not a netcdf file" * 10)
    _assert_fails(write_recipe([path]), tmp_path / "out.zarr", r"junk\.nc: cannot open as netcdf")


def test_injected_nans_are_refused_naming_variable_and_channel(tmp_path, write_nc, write_recipe):
    """NaNs in a variable that is not declared masked abort the ingest, naming the channel."""
    ds = era5_like()
    ds["t"][3, 1, 2, 5] = np.nan
    path = write_nc(ds)
    msg = _assert_fails(write_recipe([path]), tmp_path / "out.zarr", r"'temperature' \(temperature_850\) has 1 NaN")
    assert str(path) in msg


def test_nans_in_a_masked_variable_are_accepted_and_skipped_in_stats(tmp_path, write_nc, write_recipe):
    """A variable declared `masked: true` may hold NaNs; its statistics skip them."""
    ds = era5_like()
    ds["t2m"][:, 0, :] = np.nan
    path = write_nc(ds)
    recipe = write_recipe([path], {"temperature": {"levels": [500, 850]}, "2m_temperature": {"masked": True}})
    out = _run(recipe, tmp_path / "out.zarr")
    stats = xr.open_zarr(out).attrs["normalization"]
    assert stats["nan_count"]["2m_temperature"] == 12 * 16
    expected = float(np.nanmean(ds["t2m"].values.astype("f8")))
    assert stats["mean"]["2m_temperature"] == pytest.approx(expected, rel=1e-6)


def test_shuffled_times_are_refused(tmp_path, write_nc, write_recipe):
    """Times out of order are refused with the offending times named."""
    ds = era5_like()
    order = np.arange(ds.sizes["time"])
    order[[4, 5]] = order[[5, 4]]
    path = write_nc(ds.isel(time=order))
    _assert_fails(write_recipe([path]), tmp_path / "out.zarr", r"variable '[a-z0-9_]+': times are not sorted: 2020-01-02 00:00 comes after 2020-01-02 06:00")


def test_duplicated_times_are_refused(tmp_path, write_nc, write_recipe):
    """A repeated time is refused and listed."""
    ds = era5_like()
    path = write_nc(ds.isel(time=[0, 1, 2, 2, 3, 4]))
    _assert_fails(write_recipe([path]), tmp_path / "out.zarr", r"duplicated times: 2020-01-01 12:00")


def test_gaps_are_listed_and_refused_unless_allowed(tmp_path, write_nc, write_recipe):
    """Missing 6-hourly times are listed; --allow-gaps ingests anyway and records the count."""
    ds = era5_like()
    path = write_nc(ds.isel(time=[0, 1, 2, 5, 6, 7]))
    recipe = write_recipe([path], time={"step": "6h"})
    _assert_fails(recipe, tmp_path / "out.zarr", r"2 missing times on the 6h grid: 2020-01-01 18:00, 2020-01-02 00:00; pass --allow-gaps")
    out = _run(recipe, tmp_path / "out.zarr", allow_gaps=True)
    ds_out = xr.open_zarr(out)
    assert ds_out.sizes["time"] == 6
    assert ds_out.attrs["provenance"]["missing_times"] == 2


def test_unknown_units_are_refused(tmp_path, write_nc, write_recipe):
    """A variable in units that cannot be converted is refused naming both units."""
    ds = era5_like()
    ds["t"].attrs["units"] = "furlongs"
    path = write_nc(ds)
    _assert_fails(write_recipe([path]), tmp_path / "out.zarr", r"'temperature' has units 'furlongs' that cannot be converted to K")


def test_missing_units_are_refused_unless_declared(tmp_path, write_nc, write_recipe):
    """No units attribute is an error; units declared in the source are then used."""
    ds = era5_like()
    del ds["t2m"].attrs["units"]
    path = write_nc(ds)
    _assert_fails(write_recipe([path]), tmp_path / "out.zarr", r"'2m_temperature' has no units attribute")
    recipe = write_recipe([{"path": str(path), "units": {"t2m": "K"}}], name="r2.yaml")
    assert _run(recipe, tmp_path / "out.zarr").exists()


def test_common_units_are_converted(tmp_path, write_nc, write_recipe):
    """Geopotential height (m) → m²/s² and °C → K are converted, and recorded."""
    ds = era5_like()
    ds["z"] = ds["z"] / 9.80665
    ds["z"].attrs["units"] = "m"
    ds["t2m"] = ds["t2m"] - 273.15
    ds["t2m"].attrs["units"] = "degC"
    path = write_nc(ds)
    recipe = write_recipe([path], {"geopotential": {"levels": [500, 850]}, "2m_temperature": {}})
    out = xr.open_zarr(_run(recipe, tmp_path / "out.zarr"))
    ref = era5_like()
    np.testing.assert_allclose(out["geopotential"].sel(level=500).values, ref["z"].sel(level=500).values[:, ::-1], rtol=1e-5)
    np.testing.assert_allclose(out["2m_temperature"].values, ref["t2m"].values[:, ::-1], atol=1e-3)
    assert out["geopotential"].attrs["units"] == "m**2 s**-2"
    assert out["2m_temperature"].attrs["velocast_converted_from"] == "degC"


def test_missing_variable_and_missing_level_are_named(tmp_path, write_nc, write_recipe):
    """An absent variable lists what the sources have; an absent level lists the file's levels."""
    path = write_nc(era5_like())
    _assert_fails(write_recipe([path], {"specific_humidity": {"levels": [500]}}), tmp_path / "o.zarr",
                  r"'specific_humidity' is in no source")
    _assert_fails(write_recipe([path], {"temperature": {"levels": [300, 500]}}, name="r2.yaml"), tmp_path / "o.zarr",
                  r"'temperature': levels \[300\] hPa are missing \(the file has \[500, 850\]\)")


def test_grids_that_differ_between_sources_are_refused(tmp_path, write_nc, write_recipe):
    """Two sources on different grids are refused naming both files."""
    a = write_nc(era5_like()[["t"]], "a.nc")
    b = write_nc(era5_like(nlat=4, nlon=8)[["t2m"]], "b.nc")
    msg = _assert_fails(write_recipe([a, b]), tmp_path / "o.zarr", r"grid \(4×8.*differs from")
    assert str(a) in msg and str(b) in msg


def test_existing_output_is_not_overwritten_without_flag(tmp_path, write_nc, write_recipe):
    """An existing store is kept unless overwrite is asked for."""
    recipe = write_recipe([write_nc(era5_like())])
    out = tmp_path / "out.zarr"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        _run(recipe, out)
    assert (out / "keep").exists()
    _run(recipe, out, overwrite=True)
    assert not (out / "keep").exists() and (out / "zarr.json").exists()


def test_no_time_dimension_in_real_monthly_file(shared_data, tmp_path, write_recipe):
    """ERA-Interim monthly means (a `month` dim, no time axis) give the 'no time dimension' error."""
    path = shared_data / "eraint_uvz.nc"
    recipe = write_recipe([path], {"geopotential": {"levels": [500]}})
    msg = _assert_fails(recipe, tmp_path / "o.zarr", r"eraint_uvz\.nc: variable 'geopotential': no time dimension \(dimensions: month")
    assert "monthly" in msg


def test_real_grib_ensemble_needs_a_member(shared_data, tmp_path, write_recipe):
    """The 10-member ERA5 GRIB is refused without `member:`, and ingested with one."""
    path = shared_data / "era5-levels-members.grib"
    variables = {"temperature": {"levels": [500, 850]}, "geopotential": {"levels": [500, 850]}}
    _assert_fails(write_recipe([path], variables), tmp_path / "o.zarr", r"ensemble dimension `number` with 10 members")
    recipe = write_recipe([{"path": str(path), "member": 3}], variables, name="r2.yaml")
    out = xr.open_zarr(_run(recipe, tmp_path / "o.zarr"))
    assert out.sizes == {"time": 4, "level": 2, "latitude": 61, "longitude": 120}
    assert out["latitude"].values[0] == -90.0 and out["level"].values.tolist() == [500, 850]
    raw = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    np.testing.assert_array_equal(
        out["temperature"].sel(level=850).isel(time=2).values,
        raw["t"].isel(number=3, time=2).sel(isobaricInhPa=850).values[::-1],
    )
    stats = out.attrs["normalization"]
    assert stats["channels"] == ["geopotential_500", "geopotential_850", "temperature_500", "temperature_850"]
    assert 200 < stats["mean"]["temperature_850"] < 300


@pytest.mark.parametrize("fraction", [1 / 3, 0.77, 0.999])
def test_real_grib_truncated_copy_is_refused(shared_data, tmp_path, write_recipe, fraction):
    """A copy of the real GRIB cut inside a message is refused as truncated, naming the message and the copy
    (cfgrib alone would skip the broken message and keep part of the times)."""
    data = (shared_data / "era5-levels-members.grib").read_bytes()
    path = tmp_path / "cut.grib"
    path.write_bytes(data[: int(len(data) * fraction)])
    recipe = write_recipe([{"path": str(path), "member": 0}], {"temperature": {"levels": [500, 850]}})
    _assert_fails(recipe, tmp_path / "o.zarr", r"cut\.grib: truncated GRIB file: message \d+ \(at byte \d+\) declares")


def test_corrupt_grib_is_refused_in_one_line_without_cfgrib_logs(shared_data, tmp_path, write_recipe):
    """The zoo's corrupted ERA5 GRIB: one `error:` line on stderr, exit 2, no traceback from cfgrib's logger."""
    import subprocess
    import sys

    recipe = write_recipe([{"path": str(shared_data / "grib-zoo" / "era5-levels-corrupted.grib"), "member": 0}],
                          {"temperature": {"levels": [500, 850]}})
    proc = subprocess.run([sys.executable, "-m", "pipeline", "ingest", "weather", str(recipe), "--out",
                           str(tmp_path / "o.zarr"), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "corrupt GRIB file: message 1" in proc.stderr, proc.stderr
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.parametrize("value, pattern", [
    (np.inf, r"'temperature' \(temperature_850\) has 1 infinite values"),
    (-np.inf, r"'temperature' \(temperature_850\) has 1 infinite values"),
    (1e30, r"'temperature' \(temperature_850\): values up to 1e\+30 look like a fill value"),
])
def test_infinite_and_fill_values_are_refused_before_anything_is_written(tmp_path, write_nc, write_recipe, value,
                                                                         pattern):
    ds = era5_like()
    ds["t"][2, 1, 3, 4] = value
    path = write_nc(ds)
    assert str(path) in _assert_fails(write_recipe([path]), tmp_path / "out.zarr", pattern)


def test_celsius_labelled_kelvin_is_refused_with_what_it_looks_like(tmp_path, write_nc, write_recipe):
    ds = era5_like()
    ds["t2m"] = ds["t2m"] - 273.15  # the attribute still says K
    ds["t2m"].attrs["units"] = "K"
    path = write_nc(ds)
    _assert_fails(write_recipe([path]), tmp_path / "out.zarr", r"'2m_temperature' \(2m_temperature\): values "
                  r"-?\d.*look like °C, not K")


def test_geopotential_height_labelled_geopotential_is_refused(tmp_path, write_nc, write_recipe):
    ds = era5_like()
    height = xr.DataArray([5500.0, 1450.0], dims="level", coords={"level": ds["level"]})  # Z500, Z850 in metres
    ds["z"] = (height + 30 * xr.ones_like(ds["z"])).astype("f4").transpose(*ds["z"].dims)
    ds["z"].attrs["units"] = "m**2 s**-2"
    path = write_nc(ds)
    recipe = write_recipe([path], {"geopotential": {"levels": [500, 850]}})
    _assert_fails(recipe, tmp_path / "out.zarr", r"'geopotential' \(geopotential_500\): values .* look like "
                  r"geopotential height in metres")


def test_plausible_ranges_accept_the_real_atmosphere() -> None:
    """ERA5-like extremes pass: Z at 1000 hPa below sea level, 200 hPa jets, polar T, tropical humidity."""
    from pipeline.weather.plausibility import check_plausible

    for variable, level, low, high in [("geopotential", 1000, -5000.0, 4000.0), ("geopotential", 500, 4.6e4, 5.95e4),
                                       ("geopotential", 50, 1.9e5, 2.15e5), ("temperature", 50, 180.0, 240.0),
                                       ("u_component_of_wind", 200, -60.0, 120.0), ("specific_humidity", 1000, 0.0, 0.03),
                                       ("surface_pressure", None, 5.0e4, 1.06e5), ("2m_temperature", None, 200.0, 330.0)]:
        check_plausible(variable, f"{variable}_{level}", level, low, high, path=None)


def test_a_grib_file_of_one_instant_ingests_as_a_time_axis_of_one(shared_data, tmp_path, write_recipe):
    """The zoo's regular Gaussian GRIB holds one message (a scalar time): ingested as one time at its valid
    time, and the summary says it cannot be trained on (it used to be refused as having no time axis, then
    crashed printing the summary)."""
    import subprocess
    import sys

    recipe = write_recipe([shared_data / "grib-zoo" / "regular_gg_sfc.grib"], {"10m_u_component_of_wind": {}})
    out = tmp_path / "o.zarr"
    proc = subprocess.run([sys.executable, "-m", "pipeline", "ingest", "weather", str(recipe), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "not to train on" in proc.stdout and "Traceback" not in proc.stderr
    ds = xr.open_zarr(out)
    assert ds.sizes["time"] == 1 and str(ds["time"].values[0])[:16] == "2017-10-18T12:00"
