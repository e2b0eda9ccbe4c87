"""Export a forecast store for other tools: ``velocast export weather STORE --to wb2 OUT.zarr``.

``wb2`` writes WeatherBench2's forecast layout as plain Zarr, so its evaluation scripts (and any xarray
user) read it without velocast:

* dims ``time`` (the init time), ``prediction_timedelta`` (the lead), ``realization`` (the ensemble member;
  WeatherBench2's ``REALIZATION`` dimension, dropped for a one-member, deterministic store), ``level``
  (hPa), ``latitude`` (ascending), ``longitude``;
* the variables keep their WeatherBench2/ERA5 names (``geopotential``, ``temperature``, ``2m_temperature``, …)
  with ``units`` and CF ``standard_name``; a ``valid_time(time, prediction_timedelta)`` coordinate;
* chunks of one init time and one level over the whole grid (WeatherBench2's recommendation: whole in space,
  small in time), Zarr format 2 by default (what every WeatherBench2 release reads).

The output is written beside its destination and renamed into place (:mod:`pipeline.files`, so a killed
export's leftovers are removed by the next), leaving nothing half-written; an existing destination is kept
unless ``overwrite``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from pipeline.config import StrictModel
from pipeline.errors import UserError
from pipeline.files import clean_stale, replace_into, temp_beside

if TYPE_CHECKING:
    import xarray as xr

WB2_RENAME = {"init_time": "time", "lead_time": "prediction_timedelta", "member": "realization"}
WB2_ORDER = ("time", "prediction_timedelta", "realization", "level", "latitude", "longitude")


class ExportConfig(StrictModel):
    """What to export, to which layout, where."""

    store: str = Field(..., description="forecast store (a path, or s3://BUCKET/PREFIX)")
    to: Literal["wb2"] = Field("wb2", description="target layout: wb2 (WeatherBench2's forecast Zarr)")
    out: str = Field(..., description="output Zarr directory")
    snapshot: str | None = Field(None, description="the store's snapshot to export (default: the latest)")
    zarr_format: Literal[2, 3] = Field(2, description="Zarr format of the output")
    overwrite: bool = Field(False, description="replace an existing output")


def to_wb2(ds: xr.Dataset) -> xr.Dataset:
    """The forecast Dataset of a store in WeatherBench2's forecast layout (see the module doc)."""
    from pipeline.forecast_store.schema import COORD_ATTRS, with_valid_time

    ds = with_valid_time(ds)
    if ds.sizes.get("member") == 1:
        ds = ds.isel(member=0, drop=True)
    ds = ds.rename({k: v for k, v in WB2_RENAME.items() if k in ds.dims or k in ds.coords})
    ds = ds.transpose(*(d for d in WB2_ORDER if d in ds.dims), ...)
    for old, new in WB2_RENAME.items():
        if new in ds.coords:
            ds[new].attrs = dict(COORD_ATTRS[old])
    ds.attrs = {key: value for key, value in ds.attrs.items() if isinstance(value, str | int | float)}
    ds.attrs["layout"] = "WeatherBench2 forecast (exported by velocast)"
    return ds


def export_weather(config: ExportConfig, *, out: object = None, progress: bool = True) -> dict:
    """Write the store's forecasts to ``config.out`` in the ``config.to`` layout; returns what was written."""
    from pipeline.forecast_store import ForecastStore
    from pipeline.forecast_store.store import store_errors

    dest = Path(config.out)
    if dest.exists() and not config.overwrite:
        raise UserError(f"{dest} exists; pass --overwrite to replace it, or choose another output")
    with store_errors(config.store, "read the forecast store"):
        ds = ForecastStore.open(config.store).dataset(snapshot=config.snapshot)
    wb2 = to_wb2(ds)
    chunks = {dim: 1 if dim in ("time", "level") else -1 for dim in wb2.dims}
    wb2 = wb2.chunk(chunks)
    for name in wb2.variables:
        wb2[name].encoding = {}
    encoding = {name: {"chunks": tuple(c[0] for c in wb2[name].chunks)} for name in wb2.data_vars}
    encoding["time"] = {"units": "hours since 1970-01-01", "dtype": "int64"}
    encoding["valid_time"] = {"units": "hours since 1970-01-01", "dtype": "int64"}
    if not np.all(wb2["time"].values.astype("datetime64[h]") == wb2["time"].values):
        encoding["time"] = encoding["valid_time"] = {"units": "seconds since 1970-01-01", "dtype": "int64"}
    clean_stale(dest)
    staging: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = temp_beside(dest)
        _write(wb2, staging, encoding=encoding, zarr_format=config.zarr_format, progress=progress)
        if dest.is_file():
            dest.unlink()
        replace_into(staging, dest)
    except OSError as exc:
        raise UserError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return {"out": str(dest), "layout": config.to, "variables": sorted(map(str, wb2.data_vars)),
            "dims": {d: int(wb2.sizes[d]) for d in (*(d for d in WB2_ORDER if d in wb2.sizes),
                                                      *sorted(str(d) for d in wb2.sizes if d not in WB2_ORDER))}}


def _write(ds: xr.Dataset, path: Path, *, encoding: dict, zarr_format: int, progress: bool) -> None:
    """Write ``ds`` one init time at a time (bounded memory, a bar over the init times)."""
    from pipeline.console import make_progress

    ds.to_zarr(path, mode="w", encoding=encoding, zarr_format=zarr_format, consolidated=True, compute=False)
    with make_progress(enabled=progress) as bar:
        task = bar.add_task("export", total=ds.sizes["time"])
        for i in range(ds.sizes["time"]):
            part = ds.isel(time=slice(i, i + 1))
            part = part.drop_vars([n for n, v in part.variables.items() if "time" not in v.dims])
            part.to_zarr(path, region={"time": slice(i, i + 1)}, zarr_format=zarr_format, consolidated=True)
            bar.update(task, completed=i + 1)


def export_summary(result: dict, config: ExportConfig, out: object) -> str:
    """One line: where the export went and what it holds."""
    dims = ", ".join(f"{k} {v}" for k, v in result["dims"].items())
    return f"wrote {', '.join(result['variables'])} ({dims}) to {result['out']} in the {result['layout']} layout"
