"""Coastlines for maps and the page, shipped with velocast (no download, so maps draw offline).

The lines are Natural Earth's 1:110m land outlines (public domain; the countries polygons that geopandas
0.14.4 shipped, dissolved into land): ``pipeline/data/coastlines_110m.json``, 132 polylines, 67 kB.
:func:`coastlines` returns them in a domain's own longitude convention (a regional −10 … 2 box or a global
0 … 360 grid), each line shifted by a multiple of 360° so it lands where the domain draws it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files

import numpy as np

from pipeline.geo import GridExtent

Line = tuple[np.ndarray, np.ndarray]  # (longitude, latitude), degrees


@cache
def _lines() -> tuple[Line, ...]:
    data = json.loads(files("pipeline.data").joinpath("coastlines_110m.json").read_text())
    return tuple((np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)) for x, y in data["lines"])


def coastlines(extent: GridExtent) -> list[Line]:
    """The coastline pieces that cross ``extent`` (a half-degree margin), longitudes in its convention."""
    west, east = extent.lon_west - 0.5, extent.lon_east + 0.5
    south, north = extent.lat_min - 0.5, extent.lat_max + 0.5
    out: list[Line] = []
    for lon, lat in _lines():
        if lat.max() < south or lat.min() > north:
            continue
        for shift in (-360.0, 0.0, 360.0):
            shifted = lon + shift
            if shifted.max() >= west and shifted.min() <= east:
                out.append((shifted, lat))
    return out


def draw_coastlines(ax, extent: GridExtent, **style) -> None:  # type: ignore[no-untyped-def]
    """Draw the coastlines on a matplotlib lat/lon axis (limits left as they are)."""
    options = {"color": "black", "linewidth": 0.6, "alpha": 0.8, **style}
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    for lon, lat in coastlines(extent):
        ax.plot(lon, lat, **options)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)


def geojson(extent: GridExtent) -> dict:
    """The coastlines crossing ``extent`` as a GeoJSON MultiLineString (for the page)."""
    return {"type": "MultiLineString",
            "coordinates": [np.round(np.stack([lon, lat], axis=1), 2).tolist() for lon, lat in coastlines(extent)]}


__all__ = ["coastlines", "draw_coastlines", "geojson"]
