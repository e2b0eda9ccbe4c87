"""Fixtures for weather tests: synthetic NetCDF files and recipes written on the fly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
import yaml


@pytest.fixture
def write_nc(tmp_path: Path) -> Callable[..., Path]:
    """Write a dataset as NetCDF in tmp_path and return its path."""

    def _write(ds: xr.Dataset, name: str = "in.nc") -> Path:
        path = tmp_path / name
        ds.to_netcdf(path)
        return path

    return _write


@pytest.fixture
def write_recipe(tmp_path: Path) -> Callable[..., Path]:
    """Write a recipe mapping as YAML; ``sources`` may be paths."""

    def _write(sources: list[Any], variables: dict[str, Any] | None = None, name: str = "recipe.yaml", **extra: Any) -> Path:
        recipe = {
            "sources": [s if isinstance(s, dict) else {"path": str(s)} for s in sources],
            "variables": variables or {"temperature": {"levels": [500, 850]}, "2m_temperature": {}},
            **extra,
        }
        path = tmp_path / name
        path.write_text(yaml.safe_dump(recipe))
        return path

    return _write
