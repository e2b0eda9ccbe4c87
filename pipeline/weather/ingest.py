"""Ingest: recipe → validated, normalised Zarr v3 training store (out of core, Dask)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pipeline.errors import UserError
from pipeline.geo import GridExtent
from pipeline.provenance import provenance_record, utc_now
from pipeline.weather import schema, validate
from pipeline.weather.recipe import Recipe
from pipeline.weather.regrid import cut_region, regrid
from pipeline.weather.schema import SOLAR_FORCING_ATTR
from pipeline.weather.sources import BUILTIN_STORE_ATTR, open_source
from pipeline.weather.store import write_training_store

log = logging.getLogger(__name__)


def assemble(recipe: Recipe, *, allow_gaps: bool = False) -> tuple[xr.Dataset, dict[str, str], dict[str, xr.Dataset]]:
    """Open, validate and combine the sources: the canonical lazy dataset, variable → source path,
    and extra groups to copy (the model state of a ``builtin:`` simulation)."""
    opened: list[tuple[str, xr.Dataset]] = [(s.path, open_source(s)) for s in recipe.sources]
    validate.check_same_grid(
        [(p, ds["latitude"].values, ds["longitude"].values) for p, ds in opened]
    )
    chosen: dict[str, xr.DataArray] = {}
    origin: dict[str, str] = {}
    for name, spec in recipe.variables.items():
        for path, ds in opened:
            if name in ds.data_vars:
                da = ds[name]
                validate.check_time_axis(ds, path=path, variable=name)
                da = validate.check_levels(da, spec.levels, path=path, name=name)
                da = validate.convert_units(da, path=path, name=name)
                chosen[name], origin[name] = da, path
                break
        else:
            have = "; ".join(f"{p}: {', '.join(map(str, ds.data_vars)) or 'nothing'}" for p, ds in opened)
            raise UserError(f"variable {name!r} is in no source (they have {have})", path=opened[0][0])
    for name in recipe.static:
        for path, ds in opened:
            da = _static_field(ds, name)
            if da is not None:
                if "time" in da.dims:
                    da = da.isel(time=0, drop=True)
                chosen[name], origin[name] = validate.convert_units(da, path=path, name=name), path
                break
        else:
            log.warning("static field %s is in no source; skipped", name)
    data = xr.Dataset({k: v.drop_attrs(deep=False).assign_attrs(units=v.attrs.get("units")) for k, v in chosen.items()})
    for k, v in chosen.items():
        data[k].attrs = {a: b for a, b in v.attrs.items() if isinstance(b, (str, int, float))}
    first = origin[next(iter(recipe.variables))]
    data = validate.select_times(data, recipe.time, path=first, allow_gaps=allow_gaps)
    if recipe.region is not None:
        data = cut_region(data, recipe.region, path=first)
    if recipe.regrid is not None:
        data = regrid(data, recipe.regrid, path=first)
    dtype = np.dtype(recipe.dtype)
    for k in data.data_vars:
        if data[k].dtype != dtype:
            data[k] = data[k].astype(dtype)
    data = data.transpose(*[d for d in ("time", "level", "latitude", "longitude") if d in data.dims])
    groups: dict[str, xr.Dataset] = {}
    for _, ds in opened:
        src = ds.attrs.get(BUILTIN_STORE_ATTR)
        if src:  # the embedded atmosphere has a sun only when its diurnal heating is on
            simulated = ds.attrs.get("simulator_config") or {}
            data.attrs[SOLAR_FORCING_ATTR] = bool(simulated.get("diurnal_heating_k_per_day", 0))
        if src and recipe.regrid is None and recipe.region is None:
            # The embedded atmosphere: keep its restartable model state (perfect-model ensembles).
            from pipeline.weather.simulate.cache import STATE_GROUP, open_model_state

            groups[STATE_GROUP] = open_model_state(src).sel(time=data["time"].values)
            for key in ("simulator_config", "simulator_version", "citation"):
                if key in ds.attrs:
                    data.attrs[key] = ds.attrs[key]
    return data, origin, groups


#: Static fields that ERA5 files carry under a time-varying variable's short name (``z`` at the surface).
_STATIC_ALIASES = {"geopotential_at_surface": "geopotential"}


def _static_field(ds: xr.Dataset, name: str) -> xr.DataArray | None:
    """The static field ``name`` of a source, or its ERA5 alias on a single-level file (no ``level``)."""
    if name in ds.data_vars:
        return ds[name]
    alias = _STATIC_ALIASES.get(name)
    if alias in ds.data_vars and "level" not in ds[alias].dims:
        return ds[alias].rename(name)
    return None


def ingest(
    recipe: Recipe,
    out: str | Path,
    *,
    allow_gaps: bool = False,
    dask_address: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    recipe_path: str | None = None,
) -> Path:
    """Run ``recipe`` and write the training store at ``out`` (atomically). Returns ``out``."""
    started = utc_now()
    client = _client(dask_address)
    try:
        data, origin, groups = assemble(recipe, allow_gaps=allow_gaps)
        masked = {name for name, spec in recipe.variables.items() if spec.masked} | set(recipe.static)
        attrs: dict[str, Any] = {
            k: v for k, v in data.attrs.items() if not k.startswith("velocast_") and v is not None
        }
        attrs["provenance"] = provenance_record(
            kind="velocast weather training store",
            recipe=recipe,
            recipe_path=recipe_path,
            sources=[s.path for s in recipe.sources],
            variable_sources=origin,
            ingest_started=started,
            missing_times=int(data.attrs.get("velocast_missing_times", 0)),
        )
        attrs["domain"] = GridExtent.of(data["latitude"].values, data["longitude"].values).to_attrs()
        data.attrs = {}
        return write_training_store(
            data, out, time_chunk=recipe.chunks.time, masked=masked, attrs=attrs, groups=groups,
            variable_sources=origin, client=client, progress=progress, overwrite=overwrite,
        )
    finally:
        if client is not None:
            client.close()


def _client(address: str | None) -> Any:
    if not address:
        return None
    try:
        from distributed import Client

        return Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"--dask-address {address}: cannot connect to the Dask scheduler ({exc})") from None


__all__ = ["assemble", "ingest", "schema"]
