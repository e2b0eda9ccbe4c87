"""The ingest recipe: a YAML file validated by pydantic.

```yaml
name: era5-wb2-1.5deg
sources:
  - path: gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-240x121_equiangular_with_poles_conservative.zarr
    storage_options: {token: anon}
variables:
  temperature: {levels: [500, 850]}
  geopotential: {levels: [500]}
  2m_temperature: {}
  sea_surface_temperature: {masked: true}   # NaN over land is allowed
static: [land_sea_mask, geopotential_at_surface]
time: {start: "2020-01-01", end: "2020-12-31T18", step: 6h}
region: {latitude: [35, 72], longitude: [-25, 45]}   # optional: a limited-area domain (any convention)
regrid: {method: conservative, factor: 2}            # or resolution_deg: 3.0; any ratio
chunks: {time: 4}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field, field_validator, model_validator

from pipeline.config import StrictModel, load_config


class SourceSpec(StrictModel):
    """One input: a file, a glob, a (remote) Zarr URL, or ``builtin:held-suarez?days=365&seed=0``."""

    path: str = Field(description="file, glob, fsspec URL, or builtin:NAME?key=value&…")
    engine: Literal["auto", "zarr", "netcdf", "grib", "builtin"] = Field(
        "auto", description="reader; auto picks from the path"
    )
    rename: dict[str, str] = Field(default_factory=dict, description="source name → canonical name")
    member: int | None = Field(None, description="ensemble member to take when the source has `number`/`member`")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options (e.g. token: anon)")
    units: dict[str, str] = Field(
        default_factory=dict, description="declared units for variables whose files carry none"
    )


class VariableSpec(StrictModel):
    """A variable to ingest."""

    levels: list[int] | None = Field(None, description="pressure levels (hPa) of a level variable")
    masked: bool = Field(False, description="NaNs are expected (e.g. sea-surface temperature over land)")


class TimeSpec(StrictModel):
    """Which instants to keep (selected, never averaged)."""

    start: str | None = None
    end: str | None = None
    step: str | None = Field(None, description="e.g. 6h; default: the source's own spacing")

    @field_validator("step")
    @classmethod
    def _step_is_timedelta(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                if pd.Timedelta(value) <= pd.Timedelta(0):
                    raise ValueError
            except ValueError:
                raise ValueError(f"not a positive time step: {value!r} (e.g. 6h, 1D)") from None
        return value


class RegridSpec(StrictModel):
    """Horizontal regridding onto a regular grid of spacing Δ over the source's own domain (any ratio):
    ``conservative`` (area-weighted) or ``bilinear``; Δ is ``resolution_deg``, or ``factor`` × the source's
    spacing. See :mod:`pipeline.weather.regrid`."""

    method: Literal["conservative", "bilinear"] = "conservative"
    factor: float | None = Field(None, gt=0, description="target spacing as a multiple of the source's (2: half the points each way)")
    resolution_deg: float | None = Field(None, gt=0, description="target spacing in degrees")

    @model_validator(mode="after")
    def _one_target(self) -> RegridSpec:
        if (self.factor is None) == (self.resolution_deg is None):
            raise ValueError("regrid needs exactly one of `factor` or `resolution_deg`")
        return self


class RegionSpec(StrictModel):
    """A latitude/longitude box (degrees) cut from the sources: a limited-area domain.

    ``longitude: [west, east]`` runs eastwards in any convention; a box across 0° may be written
    ``[-10, 2]`` or ``[350, 2]`` and is kept contiguous (−10 … 2) either way."""

    latitude: tuple[float, float] = Field(description="[south, north], degrees north")
    longitude: tuple[float, float] = Field(description="[west, east], degrees east, eastwards from west")

    @field_validator("latitude")
    @classmethod
    def _latitudes(cls, value: tuple[float, float]) -> tuple[float, float]:
        south, north = value
        if not -90.0 <= south < north <= 90.0:
            raise ValueError(f"latitude box must be [south, north] within [-90, 90] with south < north, got {list(value)}")
        return value

    @field_validator("longitude")
    @classmethod
    def _longitudes(cls, value: tuple[float, float]) -> tuple[float, float]:
        west, east = value
        if not (-360.0 <= west <= 360.0 and -360.0 <= east <= 360.0) or west == east:
            raise ValueError(f"longitude box must be [west, east] within [-360, 360], not equal, got {list(value)}")
        return value


class ChunkSpec(StrictModel):
    """Chunking of the training store: a few time steps of full fields per chunk."""

    time: int = Field(4, ge=1, description="time steps per chunk")


class Recipe(StrictModel):
    """A weather ingest recipe."""

    name: str = "weather"
    sources: list[SourceSpec] = Field(min_length=1)
    variables: dict[str, VariableSpec] = Field(min_length=1)
    static: list[str] = Field(default_factory=list, description="static fields to copy where present")
    time: TimeSpec = Field(default_factory=TimeSpec)
    region: RegionSpec | None = Field(None, description="cut a lat/lon box (a regional domain) before regridding")
    regrid: RegridSpec | None = None
    chunks: ChunkSpec = Field(default_factory=ChunkSpec)
    dtype: Literal["float32", "float64"] = "float32"

    @model_validator(mode="after")
    def _one_level_set(self) -> Recipe:
        sets = {name: tuple(sorted(v.levels)) for name, v in self.variables.items() if v.levels}
        if len(set(sets.values())) > 1:
            listed = ", ".join(f"{k}: {list(v)}" for k, v in sets.items())
            raise ValueError(
                f"all level variables share one `level` dimension, so they need the same levels ({listed})"
            )
        return self


def load_recipe(path: str | Path, *, sets: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read and validate a recipe (a problem is one UserError line)."""
    return load_config(Recipe, path, sets=sets)
