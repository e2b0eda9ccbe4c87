"""Lat/lon domains: global or limited-area (regional), and the longitude convention that keeps them whole.

Longitudes are degrees east. A **global** grid (its columns go once round the circle at an even spacing)
is written in [0, 360), ascending, as WeatherBench2 does. A **regional** grid keeps a contiguous,
ascending run of longitudes in the source's own convention: a box that crosses 0° stays one run (e.g.
−10 … 2, never 0 … 2 then 350 … 359.75), so arrays, maps and interpolation see no seam inside the domain.

:class:`GridExtent` is the domain a grid answers for: its cells' bounds (cell centres ± half a spacing),
or the whole sphere. Stores record it (``domain`` attribute, :meth:`GridExtent.to_attrs`), queries refuse
points outside it, plots draw it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def median_spacing(values: np.ndarray, *, periodic_span: float | None = None) -> float:
    """The median spacing of sorted coordinate ``values`` (``periodic_span`` wraps the differences)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float("nan")
    steps = np.diff(values)
    if periodic_span is not None:
        steps = steps % periodic_span
    return float(np.median(np.abs(steps)))


def is_periodic_longitude(lon: np.ndarray) -> bool:
    """Whether longitudes ``lon`` (any order, any convention) go once round the circle at an even spacing:
    the largest gap between neighbours on the circle is no more than 1.5 spacings."""
    wrapped = np.sort(np.mod(np.asarray(lon, dtype=np.float64), 360.0))
    if wrapped.size < 3:
        return False
    gaps = np.diff(np.append(wrapped, wrapped[0] + 360.0))
    spacing = float(np.median(gaps))
    return spacing > 0 and float(gaps.max()) <= 1.5 * spacing and abs(spacing * wrapped.size - 360.0) <= 0.5 * spacing


def contiguous_longitudes(lon: np.ndarray) -> np.ndarray:
    """Relabelled longitudes (each equal to its input modulo 360) whose ascending order is the domain's own.

    Global grids → [0, 360). A regional run that is already ascending with a span under 360° is kept as it
    is (the source's convention). Otherwise the run starts after the widest gap on the circle, and values
    are counted eastwards from there: a box crossing 0° read from a [0, 360) file becomes −10 … 2.
    """
    lon = np.asarray(lon, dtype=np.float64)
    if lon.size < 2:
        return lon.copy()
    if is_periodic_longitude(lon):
        return np.mod(lon, 360.0)
    steps = np.diff(lon)
    if np.all(steps > 0) and lon[-1] - lon[0] < 360.0 and steps.max() <= 1.5 * float(np.median(steps)):
        return lon.copy()
    wrapped = np.mod(lon, 360.0)
    ordered = np.sort(wrapped)
    gaps = np.diff(np.append(ordered, ordered[0] + 360.0))
    west = ordered[(int(np.argmax(gaps)) + 1) % ordered.size]
    relabelled = west + np.mod(wrapped - west, 360.0)
    if relabelled.max() >= 360.0:  # a box across Greenwich reads −10 … 2, not 350 … 362
        relabelled = relabelled - 360.0
    return relabelled


def in_lon_box(lon: np.ndarray, west: float, east: float) -> np.ndarray:
    """Mask of longitudes inside the box from ``west`` eastwards to ``east`` (any convention; ``west > east``
    modulo 360 crosses 0°; a span of 360° or more is every longitude)."""
    lon = np.asarray(lon, dtype=np.float64)
    if east - west >= 360.0:
        return np.ones(lon.shape, dtype=bool)
    width = (east - west) % 360.0
    return np.mod(lon - west, 360.0) <= width + 1e-9


@dataclass(frozen=True)
class GridExtent:
    """Where a grid answers: the sphere (``periodic`` longitude reaching both poles) or a lat/lon box of
    its cells' bounds (centres ± half a spacing)."""

    lat_min: float
    lat_max: float
    lon_west: float
    lon_span: float  # degrees eastwards from lon_west; 360 for a periodic grid
    periodic: bool

    @classmethod
    def of(cls, lat: np.ndarray, lon: np.ndarray) -> GridExtent:
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        dlat = median_spacing(np.sort(lat)) if lat.size > 1 else 180.0
        periodic = is_periodic_longitude(lon)
        steps = np.diff(lon) % 360.0 if lon.size > 1 else np.array([360.0])
        dlon = float(np.median(steps))
        lat_lo, lat_hi = float(np.min(lat)), float(np.max(lat))
        reaches_poles = lat_lo - 1.5 * dlat <= -90.0 and lat_hi + 1.5 * dlat >= 90.0
        if periodic and reaches_poles:
            return cls(-90.0, 90.0, float(lon[0]), 360.0, True)
        return cls(max(-90.0, lat_lo - dlat / 2), min(90.0, lat_hi + dlat / 2),
                   float(lon[0]) - (0.0 if periodic else dlon / 2),
                   360.0 if periodic else float(steps.sum()) + dlon, periodic)

    @property
    def is_global(self) -> bool:
        return self.periodic and self.lat_min <= -90.0 and self.lat_max >= 90.0

    @property
    def lon_east(self) -> float:
        return self.lon_west + self.lon_span

    def describe(self) -> str:
        lon = "all longitudes" if self.periodic else f"lon {self.lon_west:g}…{self.lon_east:g}"
        return f"lat {self.lat_min:g}…{self.lat_max:g}, {lon}"

    def contains_lon(self, lon: float) -> bool:
        return self.periodic or (lon - self.lon_west) % 360.0 <= self.lon_span + 1e-9

    def contains(self, lat: float, lon: float) -> bool:
        return self.lat_min - 1e-9 <= lat <= self.lat_max + 1e-9 and self.contains_lon(lon)

    def to_attrs(self) -> dict[str, Any]:
        """JSON-safe record for a store's ``domain`` attribute (``kind`` global or regional)."""
        record: dict[str, Any] = {"kind": "global" if self.is_global else "regional"}
        record.update({k: round(float(v), 6) if not isinstance(v, bool) else v for k, v in asdict(self).items()})
        record["lon_east"] = round(self.lon_east, 6)
        return record


__all__ = ["GridExtent", "contiguous_longitudes", "in_lon_box", "is_periodic_longitude", "median_spacing"]
