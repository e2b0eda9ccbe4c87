"""Queries on a forecast store: point plumes, regional statistics and threshold probabilities.

Statistics over the ensemble (``member`` dimension):
* ``mean``: ensemble mean; ``spread``: ensemble standard deviation with ddof=1 (unbiased variance);
* ``q<NN>``: quantile NN/100 (linear interpolation between order statistics, ``numpy.quantile``);
* ``probability``: fraction of members with ``x > threshold`` (``exceed``) or ``x < threshold``
  (``below``); a region also gets ``area_mean_probability``, the cos(latitude)-weighted mean.

Points: ``nearest`` takes the closest grid point (great-circle distance on the lat/lon grid,
longitude periodic); ``bilinear`` interpolates linearly in latitude and longitude between the four
surrounding points (longitude periodic; beyond the first/last latitude row the edge row is used).
Regions: a bounding box ``lat_min..lat_max``, ``lon_min..lon_max`` in degrees; ``lon_min > lon_max``
(after wrapping to [0, 360)) means the box crosses 0° (e.g. 350..10).

A limited-area (regional) store answers only inside its domain, the grid's extent plus half a grid
spacing: a point or a box outside it is a :class:`QueryError` naming the domain (HTTP 422), never the
nearest corner point. Its longitudes are not periodic (bilinear clamps at the edge columns).

:class:`SnapshotReader` opens one snapshot once and keeps decoded chunks in an LRU cache, so repeated
point queries cost an in-memory index plus the statistics.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pipeline.errors import UserError
from pipeline.forecast_store.schema import parse_instant
from pipeline.geo import GridExtent
from pipeline.provenance import is_simulated

if TYPE_CHECKING:
    import xarray as xr

    from pipeline.forecast_store.store import ForecastStore

Method = Literal["nearest", "bilinear"]
Direction = Literal["exceed", "below"]
OutputFormat = Literal["json", "csv", "netcdf"]
NETCDF_LOCK = threading.Lock()
MAX_QUANTILES = 20


class QueryError(UserError):
    """A query that cannot be answered as asked (bad coordinate, variable, time ...): HTTP 422."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class EmptyStoreError(UserError):
    """The store has no cycles yet (HTTP 503 until the first cycle lands)."""


@dataclass(frozen=True)
class VarInfo:
    name: str
    dims: tuple[str, ...]
    units: str
    long_name: str

    @property
    def has_level(self) -> bool:
        return "level" in self.dims


@dataclass
class QueryResult:
    """A query's answer: metadata, coordinates and named fields, each with units.

    ``fields`` maps a name to ``(dims, values, units)``; ``coords`` maps a dim to its values.
    """

    kind: str
    meta: dict[str, Any]
    coords: dict[str, np.ndarray]
    fields: dict[str, tuple[tuple[str, ...], np.ndarray, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (NaN → None)."""
        out: dict[str, Any] = {"kind": self.kind, **self.meta}
        out["coords"] = {k: _jsonable(v) for k, v in self.coords.items()}
        if "lead_time" in self.coords:
            out["lead_time_units"] = "hours"
        out["fields"] = {
            k: {"dims": list(d), "units": u, "values": _jsonable(v)} for k, (d, v, u) in self.fields.items()
        }
        return out

    def to_json(self) -> bytes:
        """JSON bytes of :meth:`to_dict` (orjson straight from the numpy arrays; NaN → null)."""
        import orjson

        def fast(values: Any) -> Any:
            arr = np.asarray(values)
            return arr if arr.dtype.kind in "fiu" and arr.ndim else _jsonable(arr)

        out: dict[str, Any] = {"kind": self.kind, **self.meta}
        out["coords"] = {k: fast(v) for k, v in self.coords.items()}
        if "lead_time" in self.coords:
            out["lead_time_units"] = "hours"
        out["fields"] = {k: {"dims": list(d), "units": u, "values": fast(v)} for k, (d, v, u) in self.fields.items()}
        return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)

    def to_dataset(self) -> xr.Dataset:
        import xarray as xr

        data_vars = {}
        for name, (dims, values, units) in self.fields.items():
            data_vars[name] = (dims, np.asarray(values), {"units": units})
        coords = {k: np.asarray(v) for k, v in self.coords.items()}
        attrs = {k: (v if isinstance(v, (str, int, float)) else str(v)) for k, v in self.meta.items()
                 if v is not None}
        attrs["kind"] = self.kind
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)

    def to_csv(self) -> str:
        """Tidy CSV: '#' comment lines with the metadata and units, then one row per coordinate
        (fields with a ``member`` dim become columns ``NAME_m<k>``)."""
        lines = [f"# {k}: {v}" for k, v in self.meta.items() if v is not None and not isinstance(v, (list, dict))]
        lines += [f"# units[{k}]: {u}" for k, (_, _, u) in self.fields.items()]
        base_dims = [d for d in self.coords if d != "member"]
        grids = np.meshgrid(*[np.asarray(self.coords[d]) for d in base_dims], indexing="ij") if base_dims else []
        columns: list[tuple[str, np.ndarray]] = [(d, g.ravel()) for d, g in zip(base_dims, grids)]
        for name, (dims, values, _) in self.fields.items():
            values = np.asarray(values)
            if "member" in dims:
                axis = dims.index("member")
                moved = np.moveaxis(values, axis, -1)
                for k, m in enumerate(np.asarray(self.coords["member"])):
                    columns.append((f"{name}_m{int(m)}", moved[..., k].ravel()))
            elif dims == tuple(base_dims):
                columns.append((name, values.ravel()))
            elif dims == ():
                lines.append(f"# {name}: {_fmt(values)}")
        lines.append(",".join(name for name, _ in columns))
        n = len(columns[0][1]) if columns else 0
        for i in range(n):
            lines.append(",".join(_fmt(col[i]) for _, col in columns))
        return "\n".join(lines) + "\n"

    def to_netcdf(self) -> bytes:
        """NetCDF-4 bytes (netCDF4 engine, via a temporary file)."""
        import os
        import tempfile

        ds = self.to_dataset()
        for name in ds.variables:
            if ds[name].dtype.kind == "m":
                ds[name].encoding["units"] = "hours"
        fd, tmp = tempfile.mkstemp(suffix=".nc")
        os.close(fd)
        try:
            with NETCDF_LOCK:  # libnetcdf/libhdf5 are not thread-safe: one writer at a time in this process
                ds.to_netcdf(tmp, engine="netcdf4")
            with open(tmp, "rb") as handle:
                return handle.read()
        finally:
            os.unlink(tmp)

    def render(self, fmt: OutputFormat) -> bytes:
        if fmt == "json":
            return self.to_json()
        if fmt == "csv":
            return self.to_csv().encode()
        if fmt == "netcdf":
            return self.to_netcdf()
        raise QueryError(f"unknown format {fmt!r}; use json, csv or netcdf", param="format")


def _fmt(value: Any) -> str:
    if isinstance(value, np.datetime64):
        return str(np.datetime64(value, "s"))
    if isinstance(value, np.timedelta64):
        return f"{value / np.timedelta64(1, 'h'):g}"
    if isinstance(value, (float, np.floating)):
        return "" if not math.isfinite(value) else f"{float(value):.6g}"
    return str(value)


def _jsonable(values: Any) -> Any:
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        return [str(np.datetime64(v, "s")) for v in arr.ravel()] if arr.ndim else str(np.datetime64(arr, "s"))
    if arr.dtype.kind == "m":
        return (arr / np.timedelta64(1, "h")).tolist()
    if arr.dtype.kind == "f":
        arr = arr.astype("float64")
        if not np.all(np.isfinite(arr)):
            obj = arr.astype(object)
            obj[~np.isfinite(arr)] = None
            return obj.tolist()
    return arr.tolist()


class _LRU:
    """A byte-bounded LRU of decoded chunks (thread-safe)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.items: OrderedDict[Any, np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any) -> np.ndarray | None:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: Any, value: np.ndarray) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = value
            self.bytes += value.nbytes
            while self.bytes > self.max_bytes and len(self.items) > 1:
                _, old = self.items.popitem(last=False)
                self.bytes -= old.nbytes


def parse_lead(value: str | float) -> np.timedelta64:
    """A lead time from hours (``24``, ``"24"``) or ``"24h"``, ``"1d"``, ``"90m"``."""
    text = str(value).strip().lower()
    units = {"h": "h", "d": "D", "m": "m"}
    try:
        if text and text[-1] in units:
            number = float(text[:-1])
            unit = units[text[-1]]
        else:
            number, unit = float(text), "h"
    except ValueError:
        raise QueryError(f"bad lead {value!r}; use hours (24) or 24h / 1d", param="lead") from None
    if not math.isfinite(number) or abs(number) > 1e6:
        raise QueryError(f"bad lead {value!r}; use hours (24) or 24h / 1d", param="lead")
    minutes = number * {"h": 60, "D": 1440, "m": 1}[unit]
    return np.timedelta64(round(minutes), "m").astype("timedelta64[ns]")


def parse_time(value: str) -> np.datetime64:
    """An init time from ISO 8601 (``2020-01-01T06``, ``2020-01-01T06:00Z``)."""
    text = str(value).strip().removesuffix("Z").removesuffix("z")
    if not text or len(text) > 40:
        raise QueryError(f"bad init_time {value!r}; use ISO 8601 like 2020-01-01T06:00", param="init_time")
    out = parse_instant(text)
    if out is None:
        raise QueryError(f"bad init_time {value!r}; use ISO 8601 like 2020-01-01T06:00 (years 1678–2262)",
                         param="init_time")
    return out


def _finite(value: float, name: str, lo: float, hi: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise QueryError(f"{name} must be a number, got {value!r}", param=name) from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise QueryError(f"{name}={value!r} is out of range [{lo:g}, {hi:g}]", param=name)
    return x


def check_quantiles(quantiles: Sequence[float] | None) -> list[float]:
    qs = list(quantiles or [])
    if len(qs) > MAX_QUANTILES:
        raise QueryError(f"at most {MAX_QUANTILES} quantiles", param="quantiles")
    return [_finite(q, "quantiles", 0.0, 1.0) for q in qs]


def _level(value: Any) -> int | float:
    """A level for output: an int when whole (850), else a float (62.5)."""
    x = float(value)
    return int(x) if x.is_integer() else round(x, 6)


def _qname(q: float) -> str:
    return f"q{q * 100:g}".replace(".", "_")


def _stats(values: np.ndarray, *, axis: int, quantiles: Sequence[float], dims: tuple[str, ...],
           units: str) -> dict[str, tuple[tuple[str, ...], np.ndarray, str]]:
    n = values.shape[axis]
    out = {
        "mean": (dims, values.mean(axis=axis), units),
        "spread": (dims, values.std(axis=axis, ddof=1) if n > 1 else np.zeros_like(values.mean(axis=axis)), units),
    }
    if quantiles:
        # numpy's default ("linear") quantile from one sort: x[lo] + (q(n-1) - lo)·(x[hi] - x[lo])
        ordered = np.sort(values, axis=axis)
        for q in quantiles:
            pos = q * (n - 1)
            lo, hi = int(np.floor(pos)), int(np.ceil(pos))
            a, b = np.take(ordered, lo, axis=axis), np.take(ordered, hi, axis=axis)
            out[_qname(q)] = (dims, a + (pos - lo) * (b - a), units)
    return out


class SnapshotReader:
    """Read-side view of one snapshot: coordinates, variables and cached chunk reads.

    Thread-safe; build one per snapshot and share it (the HTTP service keeps one per head).
    """

    def __init__(self, store: ForecastStore, *, snapshot: str | None = None, cache_bytes: int = 512 << 20) -> None:
        import zarr

        from pipeline.forecast_store.store import _open_dataset

        session = store.session(snapshot=snapshot)
        self.snapshot_id: str = session.snapshot_id
        self.location = store.location
        if not store._has_cycles(session):
            raise EmptyStoreError(f"{store.location}: the store has no cycles yet")
        ds = _open_dataset(session)
        self.init_times = ds["init_time"].values.astype("datetime64[ns]")
        self.latest_index = int(np.argmax(self.init_times))
        self.lead_times = ds["lead_time"].values.astype("timedelta64[ns]")
        self.members = ds["member"].values
        self.levels = ds["level"].values if "level" in ds.coords else np.array([])
        self.lat = ds["latitude"].values.astype("float64")
        self.lon = ds["longitude"].values.astype("float64")
        self.extent = GridExtent.of(self.lat, self.lon)
        self.attrs = dict(ds.attrs)
        self.variables = {
            str(name): VarInfo(str(name), tuple(str(d) for d in var.dims), str(var.attrs.get("units", "")),
                               str(var.attrs.get("long_name", name)))
            for name, var in ds.data_vars.items()
        }
        group = zarr.open_group(session.store, mode="r", zarr_format=3)
        self._arrays = {name: group[name] for name in self.variables}
        self._chunks = {name: (arr.chunks[1], arr.chunks[-2], arr.chunks[-1]) for name, arr in self._arrays.items()}
        self._cache = _LRU(cache_bytes)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- validation
    def variable(self, name: str) -> VarInfo:
        if name not in self.variables:
            raise QueryError(f"unknown variable {name!r}; available: {', '.join(sorted(self.variables))}",
                             param="variable")
        return self.variables[name]

    def level_index(self, info: VarInfo, level: float | None) -> int | None:
        if not info.has_level:
            if level is not None:
                raise QueryError(f"{info.name} is a surface variable; omit level", param="level")
            return None
        if level is None:
            raise QueryError(f"{info.name} needs a level; available: {', '.join(f'{_level(v)}' for v in self.levels)}",
                             param="level")
        x = _finite(level, "level", 0.0, 1e6)
        hits = np.nonzero(np.abs(self.levels - x) < 1e-6)[0]
        if len(hits) == 0:
            raise QueryError(f"level {level} not in the store; available: {', '.join(f'{_level(v)}' for v in self.levels)}",
                             param="level")
        return int(hits[0])

    def init_index(self, init_time: str | None) -> int:
        """Index of ``init_time`` (default: the latest init time)."""
        if init_time is None or str(init_time).lower() in ("", "latest"):
            return self.latest_index
        want = parse_time(init_time)
        hits = np.nonzero(self.init_times == want)[0]
        if len(hits) == 0:
            have = ", ".join(str(np.datetime64(t, "m")) for t in np.sort(self.init_times)[-5:])
            raise QueryError(f"no cycle with init_time {np.datetime64(want, 'm')}; latest cycles: {have}",
                             param="init_time")
        return int(hits[-1])

    def lead_index(self, lead: str | float) -> int:
        want = parse_lead(lead)
        hits = np.nonzero(self.lead_times == want)[0]
        if len(hits) == 0:
            hours = ", ".join(f"{h:g}" for h in (self.lead_times / np.timedelta64(1, "h"))[:12])
            raise QueryError(f"lead {lead!r} is not in the store; leads (hours): {hours}"
                             f"{' ...' if len(self.lead_times) > 12 else ''}", param="lead")
        return int(hits[0])

    # ---------------------------------------------------------------- reading
    def _tile(self, name: str, init_i: int, level_i: int | None, lblock: int, tlat: int, tlon: int) -> np.ndarray:
        """Decoded chunk (lead block, member, tile_lat, tile_lon) of one spatial tile, cached."""
        key = (name, init_i, level_i, lblock, tlat, tlon)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        arr = self._arrays[name]
        clead, clat, clon = self._chunks[name]
        idx = (init_i, slice(lblock * clead, (lblock + 1) * clead), slice(None))
        idx += ((level_i,) if level_i is not None else ())
        idx += (slice(tlat * clat, (tlat + 1) * clat), slice(tlon * clon, (tlon + 1) * clon))
        value = np.ascontiguousarray(arr[idx])
        self._cache.put(key, value)
        return value

    def _points(self, name: str, init_i: int, level_i: int | None, ilat: np.ndarray, ilon: np.ndarray) -> np.ndarray:
        """Values (lead, member, k) at grid points (ilat[k], ilon[k])."""
        clead, clat, clon = self._chunks[name]
        nlead = len(self.lead_times)
        out = np.empty((nlead, len(self.members), len(ilat)), dtype="float32")
        for k, (i, j) in enumerate(zip(ilat, ilon)):
            for lb in range(-(-nlead // clead)):
                tile = self._tile(name, init_i, level_i, lb, int(i) // clat, int(j) // clon)
                out[lb * clead:(lb + 1) * clead, :, k] = tile[:, :, int(i) % clat, int(j) % clon]
        return out

    def _map(self, name: str, init_i: int, level_i: int | None, lead_i: int,
             ilat: np.ndarray, ilon: np.ndarray) -> np.ndarray:
        """Values (member, lat, lon) at one lead on the sub-grid ilat × ilon (reads whole tiles, cached)."""
        arr = self._arrays[name]
        clead, clat, clon = arr.chunks[1], arr.chunks[-2], arr.chunks[-1]
        out = np.empty((len(self.members), len(ilat), len(ilon)), dtype="float32")
        for tlat in np.unique(ilat // clat):
            rows = np.nonzero(ilat // clat == tlat)[0]
            for tlon in np.unique(ilon // clon):
                cols = np.nonzero(ilon // clon == tlon)[0]
                tile = self._tile(name, init_i, level_i, lead_i // clead, int(tlat), int(tlon))[lead_i % clead]
                out[:, rows[:, None], cols[None, :]] = tile[:, (ilat[rows] % clat)[:, None], (ilon[cols] % clon)[None, :]]
        return out

    # ---------------------------------------------------------------- geometry
    def _weights(self, lat: float, lon: float, method: Method) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grid indices (ilat, ilon) and weights for a point; weights sum to 1."""
        if not self.extent.contains(lat, lon):
            raise QueryError(f"lat={lat:g}, lon={lon:g} lies outside this store's domain "
                             f"({self.extent.describe()}); ask for a point inside it", param="lat")
        lon = lon % 360.0
        nlon = len(self.lon)
        if method == "nearest":
            dlon = np.abs((self.lon - lon + 180.0) % 360.0 - 180.0)
            i = int(np.argmin(np.abs(self.lat - lat)))
            j = int(np.argmin(dlon))
            return np.array([i]), np.array([j]), np.array([1.0])
        # bilinear, latitude clamped at the edge rows, longitude periodic
        if lat <= self.lat[0]:
            i0 = i1 = 0
            wy = 0.0
        elif lat >= self.lat[-1]:
            i0 = i1 = len(self.lat) - 1
            wy = 0.0
        else:
            i1 = int(np.searchsorted(self.lat, lat))
            i0 = i1 - 1
            wy = (lat - self.lat[i0]) / (self.lat[i1] - self.lat[i0])
        if self.extent.periodic:
            step = np.diff(np.append(self.lon, self.lon[0] + 360.0))
            j0 = int(np.searchsorted(self.lon, lon, side="right") - 1) % nlon
            j1 = (j0 + 1) % nlon
            wx = ((lon - self.lon[j0]) % 360.0) / step[j0]
        else:  # limited area: eastward offsets from the west column, clamped at the edge columns
            east = (self.lon - self.lon[0]) % 360.0
            x = (lon - self.lon[0]) % 360.0
            if x > east[-1]:  # in a half-cell margin: east of the last column or west of the first
                x = float(east[-1]) if x - east[-1] < 360.0 - x else 0.0
            j1 = min(int(np.searchsorted(east, x, side="right")), nlon - 1)
            j0 = max(j1 - 1, 0)
            wx = 0.0 if j0 == j1 else float(np.clip((x - east[j0]) / (east[j1] - east[j0]), 0.0, 1.0))
        ilat = np.array([i0, i0, i1, i1])
        ilon = np.array([j0, j1, j0, j1])
        w = np.array([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx])
        return ilat, ilon, w

    def region_indices(self, lat_min: float, lat_max: float, lon_min: float, lon_max: float) -> tuple[np.ndarray, np.ndarray]:
        """Grid indices inside the box; lon_min > lon_max (mod 360) crosses 0°."""
        lat_min = _finite(lat_min, "lat_min", -90, 90)
        lat_max = _finite(lat_max, "lat_max", -90, 90)
        lon_min = _finite(lon_min, "lon_min", -360, 360)
        lon_max = _finite(lon_max, "lon_max", -360, 360)
        if lat_min > lat_max:
            raise QueryError(f"lat_min={lat_min:g} is above lat_max={lat_max:g}", param="lat_min")
        ilat = np.nonzero((self.lat >= lat_min) & (self.lat <= lat_max))[0]
        if lon_max - lon_min >= 360.0:
            ilon = np.arange(len(self.lon))
        else:  # eastward offsets from lon_min, so a box crossing 0° runs continuously eastwards
            offset = (self.lon - lon_min) % 360.0
            ilon = np.nonzero(offset <= (lon_max - lon_min) % 360.0 + 1e-9)[0]
            ilon = ilon[np.argsort(offset[ilon], kind="stable")]
        if len(ilat) == 0 or len(ilon) == 0:
            if not self.extent.is_global:
                raise QueryError(f"the box holds no grid point of this store's domain ({self.extent.describe()}); "
                                 "ask for a box that overlaps it", param="lat_min" if len(ilat) == 0 else "lon_min")
            raise QueryError("the box contains no grid points; widen it (grid spacing "
                             f"{abs(self.lat[1] - self.lat[0]):.3g}° × {self.lon[1] - self.lon[0]:.3g}°)",
                             param="lat_min" if len(ilat) == 0 else "lon_min")
        return ilat, ilon

    # ---------------------------------------------------------------- queries
    def _meta(self, info: VarInfo, init_i: int, level_i: int | None) -> dict[str, Any]:
        return {
            "variable": info.name, "long_name": info.long_name, "units": info.units,
            "level": None if level_i is None else _level(self.levels[level_i]),
            "level_units": None if level_i is None else "hPa",
            "init_time": str(np.datetime64(self.init_times[init_i], "s")),
            "snapshot": self.snapshot_id,
        }

    def point(self, *, variable: str, lat: float, lon: float, level: float | None = None,
              init_time: str | None = None, method: Method = "nearest", quantiles: Sequence[float] = (),
              members: bool = False) -> QueryResult:
        """Plume at a point over all leads: mean, spread, quantiles (and members)."""
        info = self.variable(variable)
        level_i = self.level_index(info, level)
        init_i = self.init_index(init_time)
        lat = _finite(lat, "lat", -90, 90)
        lon = _finite(lon, "lon", -360, 360)
        if method not in ("nearest", "bilinear"):
            raise QueryError(f"method must be nearest or bilinear, got {method!r}", param="method")
        qs = check_quantiles(quantiles)
        ilat, ilon, w = self._weights(lat, lon, method)
        values = self._points(info.name, init_i, level_i, ilat, ilon) @ w.astype("float32")  # (lead, member)
        fields = _stats(values, axis=1, quantiles=qs, dims=("lead_time",), units=info.units)
        if members:
            fields["members"] = (("lead_time", "member"), values, info.units)
        meta = self._meta(info, init_i, level_i)
        meta.update(lat=lat, lon=lon, method=method,
                    grid_lat=[float(self.lat[i]) for i in ilat], grid_lon=[float(self.lon[j]) for j in ilon])
        meta["valid_time"] = np.datetime_as_string(self.init_times[init_i] + self.lead_times, unit="s").tolist()
        coords: dict[str, np.ndarray] = {"lead_time": self.lead_times}
        if members:
            coords["member"] = self.members
        return QueryResult("point", meta, coords, fields)

    def region(self, *, variable: str, lat_min: float, lat_max: float, lon_min: float, lon_max: float,
               lead: str | float, level: float | None = None, init_time: str | None = None,
               quantiles: Sequence[float] = (), members: bool = False,
               threshold: float | None = None, direction: Direction = "exceed",
               stats: bool = True) -> QueryResult:
        """Statistics on the box at one lead; with ``threshold``, also the exceedance probability map."""
        info = self.variable(variable)
        level_i = self.level_index(info, level)
        init_i = self.init_index(init_time)
        lead_i = self.lead_index(lead)
        qs = check_quantiles(quantiles)
        ilat, ilon = self.region_indices(lat_min, lat_max, lon_min, lon_max)
        values = self._map(info.name, init_i, level_i, lead_i, ilat, ilon)  # (member, lat, lon)
        dims = ("latitude", "longitude")
        fields: dict[str, tuple[tuple[str, ...], np.ndarray, str]] = {}
        if stats:
            fields.update(_stats(values, axis=0, quantiles=qs, dims=dims, units=info.units))
        if members:
            fields["members"] = (("member", "latitude", "longitude"), values, info.units)
        meta = self._meta(info, init_i, level_i)
        meta.update(lead_hours=float(self.lead_times[lead_i] / np.timedelta64(1, "h")),
                    valid_time=str(np.datetime64(self.init_times[init_i] + self.lead_times[lead_i], "s")),
                    bbox=[float(lat_min), float(lat_max), float(lon_min), float(lon_max)])
        if threshold is not None:
            thr = _finite(threshold, "threshold", -1e12, 1e12)
            if direction not in ("exceed", "below"):
                raise QueryError(f"direction must be exceed or below, got {direction!r}", param="direction")
            prob = (values > thr).mean(axis=0) if direction == "exceed" else (values < thr).mean(axis=0)
            weights = np.cos(np.deg2rad(self.lat[ilat]))[:, None] * np.ones((1, len(ilon)))
            fields["probability"] = (dims, prob, "1")
            meta.update(threshold=thr, threshold_units=info.units, direction=direction,
                        area_mean_probability=float((prob * weights).sum() / weights.sum()))
        coords = {"latitude": self.lat[ilat], "longitude": self.lon[ilon]}
        if members:
            coords["member"] = self.members
        return QueryResult("probability" if threshold is not None and not stats else "region", meta, coords, fields)

    def point_probability(self, *, variable: str, lat: float, lon: float, threshold: float,
                          direction: Direction = "exceed", level: float | None = None,
                          init_time: str | None = None, method: Method = "nearest") -> QueryResult:
        """Probability over leads that the point's value exceeds (or undercuts) ``threshold``."""
        thr = _finite(threshold, "threshold", -1e12, 1e12)
        if direction not in ("exceed", "below"):
            raise QueryError(f"direction must be exceed or below, got {direction!r}", param="direction")
        plume = self.point(variable=variable, lat=lat, lon=lon, level=level, init_time=init_time,
                           method=method, members=True)
        values = plume.fields["members"][1]
        prob = (values > thr).mean(axis=1) if direction == "exceed" else (values < thr).mean(axis=1)
        meta = dict(plume.meta, threshold=thr, threshold_units=plume.meta["units"], direction=direction)
        return QueryResult("probability", meta, {"lead_time": plume.coords["lead_time"]},
                           {"probability": (("lead_time",), prob, "1")})

    def grid(self, *, variable: str, lead: str | float, level: float | None = None,
             init_time: str | None = None, stat: Literal["mean", "spread"] = "mean") -> dict[str, Any]:
        """The whole map of one statistic (for the web page): latitude rows south→north."""
        if stat not in ("mean", "spread"):
            raise QueryError(f"stat must be mean or spread, got {stat!r}", param="stat")
        result = self.region(variable=variable, lat_min=-90, lat_max=90, lon_min=0, lon_max=360, lead=lead,
                             level=level, init_time=init_time)
        values = result.fields[stat][1]
        finite = values[np.isfinite(values)]
        return {
            **result.meta, "stat": stat,
            "latitude": result.coords["latitude"], "longitude": result.coords["longitude"],
            "values": values, "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
        }

    def describe(self) -> dict[str, Any]:
        """What the snapshot holds (variables with units and levels, init times, leads, grid)."""
        return {
            "snapshot": self.snapshot_id,
            "init_times": [str(np.datetime64(t, "s")) for t in np.sort(self.init_times)],
            "latest_init_time": str(np.datetime64(self.init_times.max(), "s")),
            "lead_hours": (self.lead_times / np.timedelta64(1, "h")).tolist(),
            "members": len(self.members),
            "levels": [_level(v) for v in self.levels],
            "variables": {n: {"units": v.units, "long_name": v.long_name, "has_level": v.has_level}
                          for n, v in self.variables.items()},
            "domain": self.extent.to_attrs(),
            "coastlines": not is_simulated(self.attrs),
            "grid": {"n_lat": len(self.lat), "n_lon": len(self.lon),
                     "lat_min": float(self.lat.min()), "lat_max": float(self.lat.max()),
                     "lon_step": float(self.lon[1] - self.lon[0]) if len(self.lon) > 1 else 0.0},
        }
