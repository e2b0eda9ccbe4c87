"""The training store: a Zarr v3 store in the canonical schema, chunked for training reads.

Layout (see docs/reference/stores.md):

* variables ``NAME(time, level, latitude, longitude)`` and ``NAME(time, latitude, longitude)``, float32,
  chunks ``(time_chunk, all levels, all latitudes, all longitudes)``; static fields
  ``NAME(latitude, longitude)`` in one chunk;
* root attribute ``normalization`` (:data:`STATS_ATTR`): ``channels`` (list), ``mean``, ``std``,
  ``diff_std`` (dicts channel → float; ``diff_std`` is the standard deviation of x(t+Δt) − x(t) over
  consecutive store times) and ``time_step``; statistics are unweighted over time, latitude, longitude,
  NaNs skipped (masked variables);
* root attribute ``provenance`` (code version, creation time, recipe, sources, ingest time) and
  ``time_step``;
* optional groups copied verbatim (``model_state`` for the embedded atmosphere).

A store is written to a temporary directory beside the output and renamed into place, so a failed
ingest leaves nothing at the output path.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pipeline.errors import UserError, os_error_message
from pipeline.files import clean_stale, remove_tree, replace_into, temp_beside
from pipeline.weather import schema
from pipeline.weather.plausibility import check_plausible

STATS_ATTR = "normalization"
BLOCK_BYTES = 64 * 2**20  # bytes of output computed per write block (bounds memory)
TASK_BYTES = 8 * 2**20  # bytes per variable in one Dask task when writing (a multiple of the Zarr chunk)


# -- reading ------------------------------------------------------------------------------------------


def open_training_store(path: str | Path) -> xr.Dataset:
    """The training store as a lazy dataset (Dask, one chunk per stored chunk); a UserError when the path is
    missing, is not a Zarr store, or is another kind of velocast store."""
    local = "://" not in str(path)
    if local and not Path(path).exists():
        raise UserError("training store not found", path=path)
    if local and not Path(path).is_dir():
        raise UserError("is a file, not a Zarr training store (a directory written by `velocast ingest weather`)",
                        path=path)
    if local and (Path(path) / "refs").is_dir() and (Path(path) / "snapshots").is_dir():
        raise UserError("is a forecast store (Icechunk), not a training store; give the analyses the forecasts "
                        "start from (`velocast ingest weather` writes them)", path=path)
    try:
        with warnings.catch_warnings():  # a store without consolidated metadata is read all the same
            warnings.simplefilter("ignore", RuntimeWarning)
            ds = xr.open_zarr(path, chunks={})
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise UserError(f"not a Zarr store ({' '.join(str(exc).split())[:160]})", path=path) from None
    kind = str(ds.attrs.get("kind", ""))
    if kind.startswith("velocast."):  # other velocast stores say what they are (velocast.structures ...)
        what = "a protein structure store" if "structure" in kind else f"a {kind} store"
        raise UserError(f"is {what}, not a weather training store (`velocast ingest weather` writes those)",
                        path=path)
    if "time" not in ds.dims:
        raise UserError(f"has no time dimension (dimensions: {', '.join(map(str, ds.dims)) or 'none'}); not a "
                        "weather training store", path=path)
    return ds


def load_stats(ds_or_path: xr.Dataset | str | Path) -> dict[str, Any]:
    """The ``normalization`` attribute: ``{"channels": [...], "mean": {...}, "std": {...}, "diff_std": {...}}``."""
    ds = ds_or_path if isinstance(ds_or_path, xr.Dataset) else open_training_store(ds_or_path)
    if STATS_ATTR not in ds.attrs:
        raise UserError("not a velocast training store (no normalization attribute)")
    return ds.attrs[STATS_ATTR]


def time_variables(ds: xr.Dataset) -> list[str]:
    """Variables with a ``time`` dimension, sorted by name (the channel order)."""
    return sorted(str(v) for v in ds.data_vars if "time" in ds[v].dims)


def channel_names(ds: xr.Dataset) -> list[str]:
    """``temperature_850`` … for level variables, the variable name for surface ones: variables sorted by
    name, levels in store order (ascending hPa)."""
    out = []
    for name in time_variables(ds):
        da = ds[name]
        if "level" in da.dims:
            out.extend(schema.channel_name(name, int(lv)) for lv in da["level"].values)
        else:
            out.append(name)
    return out


def stack_channels(ds: xr.Dataset) -> xr.DataArray:
    """All time variables as one ``(time, channel, latitude, longitude)`` array (lazy), channel order of
    :func:`channel_names`."""
    parts = []
    for name in time_variables(ds):
        da = ds[name]
        if "level" in da.dims:
            da = da.rename(level="channel").assign_coords(
                channel=[schema.channel_name(name, int(lv)) for lv in da["level"].values]
            )
        else:
            da = da.expand_dims(channel=[name], axis=1)
        parts.append(da.transpose("time", "channel", "latitude", "longitude").drop_attrs())
    return xr.concat(parts, dim="channel").rename("data")


# -- writing --------------------------------------------------------------------------------------------


def write_training_store(
    ds: xr.Dataset,
    out: str | Path,
    *,
    time_chunk: int = 4,
    masked: set[str] | frozenset[str] = frozenset(),
    attrs: Mapping[str, Any] | None = None,
    groups: Mapping[str, xr.Dataset] | None = None,
    variable_sources: Mapping[str, str] | None = None,
    client: Any = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write ``ds`` (canonical, lazy) as a training store at ``out``; compute statistics out of core.

    NaNs in a variable not in ``masked`` abort the write (one UserError naming the variable's source from
    ``variable_sources``, the channel and the count). Nothing is left at ``out`` on failure.
    """
    from pipeline.console import make_progress

    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError("output already exists; choose another path or pass --overwrite", path=out)
    clean_stale(out)
    tmp = temp_beside(out)
    ds = _prepare(ds, time_chunk)
    try:
        ds.to_zarr(tmp, mode="w-", zarr_format=3, compute=False, consolidated=False)
        static = [v for v in ds.data_vars if "time" not in ds[v].dims]
        if static:
            fields = ds[static].compute()
            for name in static:
                _check_static(fields[name], name, path=(variable_sources or {}).get(name, "input"))
            fields.to_zarr(tmp, mode="a", zarr_format=3, consolidated=False)
        tvars = time_variables(ds)
        n_time = ds.sizes.get("time", 0)
        per_step = sum(ds[v].isel(time=0).nbytes for v in tvars) if n_time else 0
        task_steps = ds.chunksizes["time"][0] if n_time else time_chunk
        steps = max(task_steps, (BLOCK_BYTES // max(per_step, 1)) // task_steps * task_steps)
        acc = StreamingStats(tvars)
        with make_progress(transient=not progress) as bar:
            task = bar.add_task("writing", total=n_time, visible=progress)
            for start in range(0, n_time, steps):
                sl = slice(start, min(start + steps, n_time))
                block = ds[tvars].isel(time=sl).drop_vars(["level", "latitude", "longitude"], errors="ignore")
                delayed = block.to_zarr(tmp, region={"time": sl}, zarr_format=3, compute=False, consolidated=False)
                try:
                    if client is not None:
                        client.compute(delayed, sync=True)
                    else:
                        delayed.compute()
                except UserError:
                    raise
                except OSError as exc:
                    if os_error_message(exc) is None:
                        raise
                    raise UserError(f"cannot write the store: {os_error_message(exc)}", path=out) from None
                except Exception as exc:  # noqa: BLE001 (a reader failing mid-way: corrupt input)
                    srcs = ", ".join(sorted(set((variable_sources or {}).values()))) or None
                    detail = " ".join(str(exc).split())[:200]
                    raise UserError(f"failed reading the data while writing (corrupt or truncated file?): {detail}",
                                    path=srcs) from None
                # Statistics stream over the block just written (read back from the local store, with
                # the previous time step for the differences): one pass, memory bounded by a block.
                written = xr.open_zarr(tmp, chunks={"time": task_steps}, consolidated=False)[tvars]
                acc.update(written.isel(time=slice(max(start - 1, 0), sl.stop)), first=start == 0, client=client)
                acc.check(ds, masked=masked, variable_sources=variable_sources)
                bar.advance(task, sl.stop - sl.start)
        stats = acc.finish(ds, masked=masked, variable_sources=variable_sources)
        for name, group in (groups or {}).items():
            g = group.copy()
            for v in g.variables.values():
                v.encoding = {}
            g.to_zarr(tmp, group=name, mode="a", zarr_format=3, consolidated=False)
        import zarr

        root = zarr.open_group(str(tmp), mode="r+")
        root.attrs.update({**dict(attrs or {}), STATS_ATTR: stats, "time_step": stats.get("time_step")})
        consolidate(tmp)
        replace_into(tmp, out)
    finally:
        if tmp.exists():
            remove_tree(tmp)
    return out


def consolidate(path: str | Path) -> None:
    """Consolidate a Zarr v3 store's metadata (fast remote opens); zarr's 'not in the v3 spec' note is muted."""
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))


def _prepare(ds: xr.Dataset, time_chunk: int) -> xr.Dataset:
    """Zarr chunks of ``time_chunk`` times (full fields); Dask chunks of a whole multiple of them, about
    ``TASK_BYTES`` per variable, so that a long record is not tens of thousands of tiny tasks."""
    ds = ds.copy()
    for v in ds.variables.values():
        v.encoding = {}
    chunks: dict[str, int] = {d: -1 for d in ds.dims}
    if "time" in ds.dims:
        per_step = max((ds[v].isel(time=0).nbytes for v in time_variables(ds)), default=1)
        chunks["time"] = max(1, TASK_BYTES // max(per_step * time_chunk, 1)) * time_chunk
        for name in time_variables(ds):
            var = ds[name]
            var.encoding["chunks"] = tuple(time_chunk if d == "time" else var.sizes[d] for d in var.dims)
    return ds.chunk(chunks)


class StreamingStats:
    """Per-channel count/mean/M2 of values and of time differences, merged block by block (Chan et al.'s
    parallel variance update), plus NaN counts; float64."""

    def __init__(self, variables: list[str]) -> None:
        self.variables = variables
        self.values: dict[str, list[np.ndarray]] = {}
        self.diffs: dict[str, list[np.ndarray]] = {}
        self.nans: dict[str, np.ndarray] = {}
        self.infs: dict[str, np.ndarray] = {}
        self.low: dict[str, np.ndarray] = {}
        self.high: dict[str, np.ndarray] = {}

    @staticmethod
    def _moments(da: xr.DataArray) -> tuple[Any, Any, Any]:
        dims = [d for d in ("time", "latitude", "longitude") if d in da.dims]
        n = da.notnull().sum(dims)
        mean = da.mean(dims)
        m2 = ((da - mean) ** 2).sum(dims)
        return n.data, mean.data, m2.data

    def update(self, block: xr.Dataset, *, first: bool, client: Any = None) -> None:
        """``block``: the new time steps, preceded by the previous one unless ``first``."""
        import dask

        lazy = []
        for name in self.variables:
            x = block[name].astype(np.float64)
            new = x if first else x.isel(time=slice(1, None))
            dims = [d for d in ("time", "latitude", "longitude") if d in new.dims]
            finite = new.where(np.isfinite(new))
            lazy.append(self._moments(new))
            lazy.append(self._moments(x.diff("time")) if x.sizes["time"] > 1 else None)
            lazy.append((new.isnull() & ~np.isinf(new)).sum(dims).data)
            lazy.append((np.isinf(new).sum(dims).data, finite.min(dims).data, finite.max(dims).data))
        flat = [a for item in lazy if item is not None for a in (item if isinstance(item, tuple) else (item,))]
        with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # inf − inf in the moments: refused by check()
            got = iter(client.compute(flat, sync=True) if client is not None else dask.compute(*flat))
        for i, name in enumerate(self.variables):
            v = tuple(np.atleast_1d(np.asarray(next(got), np.float64)) for _ in range(3))
            self.values[name] = _merge(self.values.get(name), v)
            if lazy[4 * i + 1] is not None:
                d = tuple(np.atleast_1d(np.asarray(next(got), np.float64)) for _ in range(3))
                self.diffs[name] = _merge(self.diffs.get(name), d)
            self.nans[name] = self.nans.get(name, 0) + np.atleast_1d(np.asarray(next(got)))
            self.infs[name] = self.infs.get(name, 0) + np.atleast_1d(np.asarray(next(got)))
            low, high = (np.atleast_1d(np.asarray(next(got), np.float64)) for _ in range(2))
            self.low[name] = low if name not in self.low else np.fmin(self.low[name], low)
            self.high[name] = high if name not in self.high else np.fmax(self.high[name], high)

    def check(self, ds: xr.Dataset, *, masked: set[str] | frozenset[str] = frozenset(),
              variable_sources: Mapping[str, str] | None = None) -> None:
        """A UserError for the first channel seen so far with ±inf, NaN (unless ``masked``) or implausible values;
        called after every block, so a bad input is refused as soon as it is read."""
        for name in self.variables:
            levels = [int(lv) for lv in ds[name]["level"].values] if "level" in ds[name].dims else [None]
            where = (variable_sources or {}).get(name, "input")
            for j, lv in enumerate(levels):
                ch = schema.channel_name(name, lv)
                n_inf = int(self.infs.get(name, np.zeros(len(levels)))[j])
                if n_inf:
                    raise UserError(f"variable {name!r} ({ch}) has {n_inf} infinite values (±inf); fix the source, "
                                    "or declare them missing (`_FillValue`) and the variable `masked: true`",
                                    path=where)
                n_nan = int(self.nans.get(name, np.zeros(len(levels)))[j])
                if n_nan and name not in masked:
                    raise UserError(
                        f"variable {name!r} ({ch}) has {n_nan} NaN values; declare it `masked: true` in the "
                        "recipe if they are expected (a truncated GRIB file also reads as NaNs)", path=where,
                    )
                if name in self.low and np.isfinite(self.low[name][j]):
                    check_plausible(name, ch, lv, float(self.low[name][j]), float(self.high[name][j]), path=where)

    def finish(
        self, ds: xr.Dataset, *, masked: set[str] | frozenset[str] = frozenset(),
        variable_sources: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The ``normalization`` attribute, after :meth:`check`."""
        self.check(ds, masked=masked, variable_sources=variable_sources)
        stats: dict[str, Any] = {"channels": [], "mean": {}, "std": {}, "diff_std": {}, "nan_count": {}}
        for name in self.variables:
            levels = [int(lv) for lv in ds[name]["level"].values] if "level" in ds[name].dims else [None]
            n, mean, m2 = self.values.get(name, (np.zeros(len(levels)),) * 3)
            dn, _, dm2 = self.diffs.get(name, (np.zeros(len(levels)),) * 3)
            for j, lv in enumerate(levels):
                ch = schema.channel_name(name, lv)
                stats["channels"].append(ch)
                stats["mean"][ch] = _finite(mean[j]) if n[j] else None
                stats["std"][ch] = _finite(np.sqrt(m2[j] / n[j])) if n[j] else None
                stats["diff_std"][ch] = _finite(np.sqrt(dm2[j] / dn[j])) if dn[j] else None
                stats["nan_count"][ch] = int(self.nans.get(name, np.zeros(len(levels)))[j])
        if "time" in ds.dims and ds.sizes["time"] > 1:
            step = np.diff(ds["time"].values).min()
            hours = step / np.timedelta64(1, "h")
            stats["time_step"] = f"{int(hours)}h" if float(hours).is_integer() else str(step)
        else:
            stats["time_step"] = None
        stats["weighting"] = "unweighted over time, latitude, longitude; NaNs skipped"
        return stats


def _check_static(field: xr.DataArray, name: str, *, path: str) -> None:
    """A static field: no ±inf, and plausible values (NaN is allowed: a static field may be masked)."""
    values = np.asarray(field.values, dtype=np.float64)
    if np.isinf(values).any():
        raise UserError(f"static field {name!r} has {int(np.isinf(values).sum())} infinite values (±inf)", path=path)
    finite = values[np.isfinite(values)]
    if finite.size:
        check_plausible(name, name, None, float(finite.min()), float(finite.max()), path=path)


def _merge(
    a: tuple[np.ndarray, np.ndarray, np.ndarray] | None, b: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine (count, mean, M2) of two samples (Chan, Golub & LeVeque 1979)."""
    nb, mb, m2b = b
    mb = np.where(nb > 0, np.nan_to_num(mb), 0.0)
    if a is None:
        return nb, mb, m2b
    na, ma, m2a = a
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = mb - ma
        mean = np.where(n > 0, ma + delta * nb / np.maximum(n, 1), 0.0)
        m2 = m2a + m2b + delta**2 * na * nb / np.maximum(n, 1)
    return n, mean, m2


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def describe_store(path: str | Path) -> str:
    """A short human summary of a training store (printed by the CLI)."""
    ds = xr.open_zarr(path, chunks={})
    stats = ds.attrs.get(STATS_ATTR, {})
    times = ds["time"].values if "time" in ds.dims else []
    span = f"{str(times[0])[:16]} … {str(times[-1])[:16]}" if len(times) else "no time"
    lines = [
        f"wrote {path}",
        (
            f"  {ds.sizes.get('time', 0)} times ({span}"
            f"{', every ' + str(stats['time_step']) if stats.get('time_step') else ''}), "
            f"grid {ds.sizes.get('latitude')}×{ds.sizes.get('longitude')}, "
            f"{len(stats.get('channels', []))} channels"
        ),
    ]
    for ch in stats.get("channels", [])[:40]:
        mean, std, dstd = (_g(stats[key].get(ch)) for key in ("mean", "std", "diff_std"))
        lines.append(f"  {ch:<24} mean {mean:<10} std {std:<9} diff_std {dstd}")
    if ds.sizes.get("time", 0) < 2:
        lines.append("  (one time: enough to start a forecast from, not to train on)")
    return "\n".join(lines)


def _g(value: float | None) -> str:
    return "–" if value is None else f"{value:.5g}"


def data_fingerprint(dataset: xr.Dataset, path: str | Path) -> str:
    """A short identity of the analysis data: path, times and attributes (cheap, no data read)."""
    digest = hashlib.sha256()
    digest.update(str(Path(path).resolve()).encode())
    digest.update(np.asarray(dataset["time"].values).astype("datetime64[ns]").tobytes())
    digest.update(repr(sorted(dataset.attrs.items())).encode())
    return f"sha256:{digest.hexdigest()[:16]}"
