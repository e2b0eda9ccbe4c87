"""Open any xarray-readable gridded source lazily (Dask) and map it to the canonical schema.

Readers: Zarr (local or any fsspec URL, e.g. ``gs://weatherbench2/…`` with ``token: anon``), NetCDF (a
file or a glob, via ``open_mfdataset``), GRIB (cfgrib, no index file written), and ``builtin:`` sources
(``builtin:held-suarez?days=365&seed=0``: the embedded atmosphere, simulated once and cached).
"""

from __future__ import annotations

import glob as globlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import xarray as xr

from pipeline.errors import UserError
from pipeline.weather import normalise as norm
from pipeline.weather import schema
from pipeline.weather.recipe import SourceSpec

#: Time steps per Dask chunk when reading files whose own chunking is unknown (NetCDF/GRIB).
READ_TIME_CHUNK = 8

#: Attribute naming the cached simulation store behind a ``builtin:`` source.
BUILTIN_STORE_ATTR = "velocast_builtin_store"

_ENSEMBLE_DIMS = ("number", "member", "realization", "ensemble")


def detect_engine(path: str) -> str:
    """``zarr``, ``netcdf``, ``grib`` or ``builtin`` from the path."""
    low = path.lower().rstrip("/")
    if low.startswith("builtin:"):
        return "builtin"
    if low.endswith((".zarr", ".zarr.zip")) or ".zarr/" in low:
        return "zarr"
    if low.endswith((".grib", ".grb", ".grib1", ".grib2", ".grb2")):
        return "grib"
    if low.endswith((".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5")):
        return "netcdf"
    if "://" not in path and Path(path).is_dir():
        return "zarr"
    raise UserError("cannot tell the file format from the name; set `engine:` (zarr, netcdf, grib)", path=path)


def open_raw(spec: SourceSpec) -> xr.Dataset:
    """The source as xarray opened it (lazy, Dask-backed), before any renaming."""
    engine = detect_engine(spec.path) if spec.engine == "auto" else spec.engine
    path = spec.path
    try:
        if engine == "builtin":
            return open_builtin(path)
        if engine == "zarr":
            remote = "://" in path and not path.startswith("file://")
            if not remote and not Path(path).exists():
                raise UserError("Zarr store not found", path=path)
            return xr.open_zarr(path, chunks={}, storage_options=spec.storage_options or None, decode_timedelta=True)
        files = _expand(path)
        if engine == "netcdf":
            for f in files:
                _check_classic_netcdf(f)
        if engine == "grib":
            for f in files:
                check_grib_messages(f)
            parts = [
                xr.open_dataset(
                    f, engine="cfgrib", chunks={"time": READ_TIME_CHUNK},
                    backend_kwargs={"indexpath": ""}, decode_timedelta=True,
                )
                for f in files
            ]
            return parts[0] if len(parts) == 1 else xr.combine_by_coords(parts, combine_attrs="drop_conflicts")
        if len(files) == 1:
            return xr.open_dataset(files[0], chunks={"time": READ_TIME_CHUNK}, decode_timedelta=True)
        return xr.open_mfdataset(
            files, chunks={"time": READ_TIME_CHUNK}, combine="by_coords", decode_timedelta=True,
            data_vars="minimal", coords="minimal", compat="override", join="exact",
        )
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 (any reader failure means a bad input file)
        raise UserError(f"cannot open as {engine}: {_short(exc)} (corrupt or truncated file?)", path=path) from None


def _expand(path: str) -> list[str]:
    if "://" in path:
        return [path]
    files = sorted(globlib.glob(path)) if any(c in path for c in "*?[") else [path]
    if not files:
        raise UserError("no file matches this pattern", path=path)
    for f in files:
        if not Path(f).is_file():
            raise UserError("file not found", path=f)
    return files


def _check_classic_netcdf(path: str) -> None:
    """A classic (NetCDF-3) file whose data are cut short still opens, reading garbage: check its size."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:3] != b"CDF":
        return
    import scipy.io

    try:
        scipy.io.netcdf_file(path, mmap=True).close()
    except Exception as exc:  # noqa: BLE001 (scipy reports a short file as a reshape/buffer error)
        raise UserError(f"truncated or corrupt NetCDF-3 file ({_short(exc)})", path=path) from None


def check_grib_messages(path: str) -> int:
    """Walk the GRIB messages of a file by their headers (no data read) and return how many there are; a
    message that runs past the end of the file (a truncated download) or lacks its ``7777`` end marker (a
    corrupt file) is a UserError naming the message, where cfgrib would skip it and keep the rest."""
    size = Path(path).stat().st_size
    count, offset = 0, 0
    with open(path, "rb") as handle:
        while offset < size:
            handle.seek(offset)
            head = handle.read(16)
            if head[:4] != b"GRIB":
                found = _next_grib(handle, offset)
                if found is None:
                    break  # trailing bytes after the last message (padding, an index): not data
                offset = found
                continue
            edition = head[7]
            length = int.from_bytes(head[8:16], "big") if edition == 2 else int.from_bytes(head[4:7], "big")
            if edition == 1 and length & 0x800000:
                return _count_with_eccodes(path)  # ECMWF's large-GRIB1 length convention: let eccodes walk it
            if length < 16 or offset + length > size:
                raise UserError(f"truncated GRIB file: message {count + 1} (at byte {offset}) declares {length} bytes "
                                f"but the file ends {size - offset} bytes after its start; download it again",
                                path=path)
            handle.seek(offset + length - 4)
            if handle.read(4) != b"7777":
                raise UserError(f"corrupt GRIB file: message {count + 1} (at byte {offset}) has no end marker where "
                                f"its length ({length} bytes) puts it", path=path)
            count += 1
            offset += length
    if count == 0:
        raise UserError("no GRIB message in this file", path=path)
    return count


def _next_grib(handle: Any, offset: int, window: int = 1 << 20) -> int | None:
    """The byte offset of the next ``GRIB`` marker after ``offset``, or None."""
    handle.seek(offset)
    carried = b""
    while block := handle.read(window):
        data = carried + block
        at = data.find(b"GRIB")
        if at >= 0:
            return offset - len(carried) + at
        offset += len(block)
        carried = data[-3:]
    return None


def _count_with_eccodes(path: str) -> int:
    import eccodes

    count = 0
    with open(path, "rb") as handle:
        while True:
            try:
                message = eccodes.codes_grib_new_from_file(handle)
            except Exception as exc:  # noqa: BLE001 (eccodes reports a short file as an error)
                raise UserError(f"truncated or corrupt GRIB file after message {count} ({_short(exc)})",
                                path=path) from None
            if message is None:
                return count
            eccodes.codes_release(message)
            count += 1


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


def open_builtin(path: str) -> xr.Dataset:
    """``builtin:held-suarez?days=365&seed=0&spinup_days=300&levels=250,500,850`` (cached simulation)."""
    parts = urlsplit(path)
    name = (parts.path or parts.netloc).strip("/")
    if name != "held-suarez":
        raise UserError(f"unknown builtin source {name!r} (available: held-suarez)", path=path)
    params: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query):
        params[key] = [int(v) for v in value.split(",")] if key == "levels" else value
    from pipeline.config import load_config
    from pipeline.weather.simulate.cache import simulate
    from pipeline.weather.simulate.model import AtmosphereConfig

    config = load_config(AtmosphereConfig, overrides=params)
    store = simulate(config)
    ds = xr.open_zarr(store, chunks={})
    ds.attrs[BUILTIN_STORE_ATTR] = str(store)
    return ds


def _valid_time_axis(ds: xr.Dataset) -> xr.Dataset:
    """``time`` as the instants the fields are valid at: GRIB's ``valid_time`` (reference time + step) where it
    has one, and a time axis of length one for a file of a single instant (one GRIB message per file)."""
    if "valid_time" in ds.coords and ds["valid_time"].dims in ((), ("time",)) and "time" in ds.coords:
        ds = ds.assign_coords(time=(ds["time"].dims, ds["valid_time"].values))
    if "time" in ds.coords and "time" not in ds.dims and ds["time"].ndim == 0:
        ds = ds.expand_dims("time")
    return ds


def open_source(spec: SourceSpec) -> xr.Dataset:
    """Open, rename to canonical variable names, select an ensemble member, normalise coordinates."""
    ds = open_raw(spec)
    path = spec.path
    ds = ds.rename({k: schema.canonical_name(str(k), spec.rename) for k in ds.data_vars if
                    schema.canonical_name(str(k), spec.rename) != k})
    for dim in _ENSEMBLE_DIMS:
        if dim in ds.dims:
            size = ds.sizes[dim]
            if spec.member is None:
                if size == 1:
                    ds = ds.isel({dim: 0})
                    continue
                raise UserError(
                    f"has an ensemble dimension `{dim}` with {size} members; "
                    f"pick one with `member: N` in the source (0..{size - 1})", path=path,
                )
            if not 0 <= spec.member < size:
                raise UserError(f"member {spec.member} is out of range 0..{size - 1}", path=path)
            ds = ds.isel({dim: spec.member})
    for dim in _ENSEMBLE_DIMS:
        if dim in ds.coords and dim not in ds.dims:
            ds = ds.drop_vars(dim)
    if "step" in ds.dims:
        if ds.sizes["step"] != 1:
            raise UserError("has a forecast `step` dimension; ingest analyses (one step) only", path=path)
        ds = ds.isel(step=0)
    ds = _valid_time_axis(ds)
    ds = norm.normalise(ds, path=path)
    keep = {"time", "level", "latitude", "longitude"}
    ds = ds.drop_vars([c for c in ds.coords if c not in keep and c not in ds.dims])
    for name, declared in spec.units.items():
        canon = schema.canonical_name(name, spec.rename)
        if canon in ds:
            ds[canon].attrs["units"] = declared
    ds.attrs["velocast_source"] = path
    return ds
