"""Validation of normalised sources. Every problem is one :class:`UserError` line naming the file,
the variable and the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.errors import UserError
from pipeline.weather import schema, units
from pipeline.weather.recipe import TimeSpec

MAX_LISTED = 5


def _listing(values: list[str]) -> str:
    head = ", ".join(values[:MAX_LISTED])
    return head + (f" … ({len(values)} in all)" if len(values) > MAX_LISTED else "")


def _fmt(t: np.datetime64) -> str:
    return str(np.datetime_as_string(t, unit="m")).replace("T", " ")


def check_time_axis(ds: xr.Dataset, *, path: str, variable: str | None = None) -> None:
    """A ``time`` dimension that is strictly increasing (no duplicates, no disorder)."""
    who = f"variable {variable!r}: " if variable else ""
    if "time" not in ds.dims:
        raise UserError(
            f"{who}no time dimension (dimensions: {', '.join(map(str, ds.dims))}); "
            "a training store needs instants in time (monthly climatologies are not supported)",
            path=path,
        )
    times = ds["time"].values
    if times.size < 2:
        return
    diffs = np.diff(times)
    dup = np.nonzero(diffs == np.timedelta64(0, "ns"))[0]
    if dup.size:
        listed = sorted({_fmt(times[i]) for i in dup})
        raise UserError(f"{who}duplicated times: {_listing(listed)}", path=path)
    back = np.nonzero(diffs < np.timedelta64(0, "ns"))[0]
    if back.size:
        i = back[0]
        raise UserError(
            f"{who}times are not sorted: {_fmt(times[i + 1])} comes after {_fmt(times[i])} "
            f"(position {i + 1}); sort the files or fix their time coordinate",
            path=path,
        )


def select_times(ds: xr.Dataset, spec: TimeSpec, *, path: str, allow_gaps: bool) -> xr.Dataset:
    """Keep instants in [start, end] on the step grid (selected, not averaged); refuse gaps unless allowed."""
    times = pd.DatetimeIndex(ds["time"].values)
    start = pd.Timestamp(spec.start) if spec.start else times[0]
    end = pd.Timestamp(spec.end) if spec.end else times[-1]
    ds = ds.sel(time=slice(start, end))
    times = pd.DatetimeIndex(ds["time"].values)
    if len(times) == 0:
        raise UserError(f"no times between {start} and {end}", path=path)
    if spec.step:
        step = pd.Timedelta(spec.step)
        anchor = pd.Timestamp(spec.start) if spec.start else times[0]
        on_grid = ((times - anchor) % step) == pd.Timedelta(0)
        if not on_grid.any():
            raise UserError(f"no time falls on the {spec.step} grid starting {anchor}", path=path)
        ds = ds.isel(time=np.nonzero(on_grid)[0])
        times = pd.DatetimeIndex(ds["time"].values)
    else:
        if len(times) < 2:
            return ds
        step = pd.Timedelta(np.diff(times.values).min())
    expected = pd.date_range(times[0], times[-1], freq=step)
    missing = expected.difference(times)
    if len(missing) and not allow_gaps:
        listed = [t.strftime("%Y-%m-%d %H:%M") for t in missing]
        raise UserError(
            f"{len(missing)} missing times on the {_step_text(step)} grid: {_listing(listed)}; "
            "pass --allow-gaps to ingest anyway",
            path=path,
        )
    ds.attrs["velocast_time_step"] = _step_text(step)
    ds.attrs["velocast_missing_times"] = len(missing)
    return ds


def _step_text(step: pd.Timedelta) -> str:
    hours = step / pd.Timedelta(hours=1)
    return f"{int(hours)}h" if hours == int(hours) else str(step)


def check_levels(da: xr.DataArray, wanted: list[int] | None, *, path: str, name: str) -> xr.DataArray:
    """Select the wanted levels of a level variable; refuse missing ones."""
    info = schema.CANONICAL.get(name)
    if "level" not in da.dims:
        if wanted:
            raise UserError(f"variable {name!r} has no level dimension but levels {wanted} were asked for", path=path)
        if info is not None and info.kind == "level":
            raise UserError(f"variable {name!r} has no level dimension (a pressure-level variable)", path=path)
        return da
    have = [int(v) for v in da["level"].values]
    if not wanted:
        raise UserError(
            f"variable {name!r} has levels {have}; list the ones to ingest with `levels:` in the recipe",
            path=path,
        )
    absent = [lv for lv in wanted if lv not in have]
    if absent:
        raise UserError(f"variable {name!r}: levels {absent} hPa are missing (the file has {have})", path=path)
    return da.sel(level=sorted(wanted))


def convert_units(da: xr.DataArray, *, path: str, name: str) -> xr.DataArray:
    """Convert to the canonical units of ``name``; refuse unknown or absent units."""
    info = schema.CANONICAL.get(name)
    raw = da.attrs.get("units")
    if info is None:
        if raw is None:
            raise UserError(f"variable {name!r}: not a canonical variable and has no units", path=path)
        return da
    if raw is None:
        raise UserError(
            f"variable {name!r} has no units attribute (expected {info.units}); declare them under "
            "`units:` in the source",
            path=path,
        )
    conv = units.conversion(raw, info.units)
    if conv is None:
        raise UserError(
            f"variable {name!r} has units {raw!r} that cannot be converted to {info.units}", path=path
        )
    scale, offset = conv
    attrs = dict(da.attrs)
    if (scale, offset) != (1.0, 0.0):
        da = da * scale + offset
    attrs["units"] = info.units
    if (scale, offset) != (1.0, 0.0):
        attrs["velocast_converted_from"] = str(raw)
    da.attrs = attrs
    return da


def check_same_grid(grids: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """All sources on one latitude/longitude grid (after normalisation)."""
    if not grids:
        return
    ref_path, ref_lat, ref_lon = grids[0]
    for path, lat, lon in grids[1:]:
        same = (
            lat.shape == ref_lat.shape and lon.shape == ref_lon.shape
            and np.allclose(lat, ref_lat, atol=1e-6) and np.allclose(lon, ref_lon, atol=1e-6)
        )
        if not same:
            raise UserError(
                f"grid ({lat.size}×{lon.size}, lat {lat.min():g}…{lat.max():g}) differs from "
                f"{ref_path} ({ref_lat.size}×{ref_lon.size}, lat {ref_lat.min():g}…{ref_lat.max():g}); "
                "regrid one of them first",
                path=path,
            )
