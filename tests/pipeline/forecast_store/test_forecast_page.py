"""The web page at / draws the map (and colour bar) in headless Chromium (SYNTHETIC store).

Needs Debian's ``chromium`` (``apt-get install chromium``); skipped where it is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fs_helpers import ServerThread

from pipeline.forecast_store.service import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(store: Path, tmp_path: Path) -> np.ndarray:
    """The page served from ``store`` as headless Chromium renders it (RGB array)."""
    from PIL import Image

    shot = tmp_path / "page.png"
    with ServerThread(create_app(str(store))) as srv:
        cmd = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
            "--window-size=1200,800", "--virtual-time-budget=5000", srv.url + "/",
        ]
        subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    return np.asarray(Image.open(shot).convert("RGB"))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_page_draws_a_coloured_map_in_headless_chromium(small_store: Path, tmp_path: Path) -> None:
    """The screenshot's map area holds many distinct colours (a drawn field, not a blank canvas)."""
    img = screenshot(small_store, tmp_path)
    # the map canvas is 720×360 at the top left below the header: sample its middle
    region = img[120:380, 40:700].reshape(-1, 3)
    colours = {tuple(c) for c in region[:: 7]}
    assert len(colours) > 50, f"only {len(colours)} distinct colours where the map should be"
    # the viridis-like palette: some pixels are clearly blue-purple and some green/yellow
    assert (region[:, 2] > region[:, 0] + 40).any() and (region[:, 1] > 150).any()


def regional_store(tmp_path: Path) -> Path:
    """A SYNTHETIC forecast cut to the British Isles, lat 48…60, lon −12…4 (a box across 0°)."""
    from pipeline.forecast_store import ForecastStore, synthetic_forecast
    from tests.pipeline.forecast_store.fs_helpers import PROV

    ds = synthetic_forecast("2021-07-01T00", members=5, leads=4, grid=(360, 181), variables=("2m_temperature",))
    lon = ds["longitude"].values
    keep = ((lon >= 348) | (lon <= 4))
    ds = ds.isel(longitude=np.flatnonzero(keep)).sel(latitude=slice(48, 60))
    ds = ds.assign_coords(longitude=np.where(ds["longitude"].values > 180, ds["longitude"].values - 360,
                                             ds["longitude"].values)).sortby("longitude")
    path = tmp_path / "regional.icechunk"
    ForecastStore.open_or_create(path).append_cycle(ds, provenance=PROV)
    return path


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_page_of_a_regional_store_draws_its_extent_coastlines_and_the_point(tmp_path: Path) -> None:
    """A regional store's page fills the map with the domain (no blank globe), draws coastlines (near-black
    pixels inside the map) and marks the chosen point (the marker's red ring)."""
    img = screenshot(regional_store(tmp_path), tmp_path)
    region = img[110:420, 60:700]
    colours = {tuple(c) for c in region.reshape(-1, 3)[::7]}
    assert len(colours) > 50
    dark = np.all(region < 60, axis=-1).sum()
    red = ((region[..., 0] > 170) & (region[..., 1] < 90) & (region[..., 2] < 80)).sum()
    assert dark > 200, f"{dark} coastline pixels"
    assert red > 10, f"{red} marker pixels"
