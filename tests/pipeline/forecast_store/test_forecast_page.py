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


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_page_draws_a_coloured_map_in_headless_chromium(small_store: Path, tmp_path: Path) -> None:
    """The screenshot's map area holds many distinct colours (a drawn field, not a blank canvas)."""
    from PIL import Image

    shot = tmp_path / "page.png"
    with ServerThread(create_app(str(small_store))) as srv:
        cmd = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
            "--window-size=1200,800", "--virtual-time-budget=5000", srv.url + "/",
        ]
        subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    img = np.asarray(Image.open(shot).convert("RGB"))
    # the map canvas is 720×360 at the top left below the header: sample its middle
    region = img[120:380, 40:700].reshape(-1, 3)
    colours = {tuple(c) for c in region[:: 7]}
    assert len(colours) > 50, f"only {len(colours)} distinct colours where the map should be"
    # the viridis-like palette: some pixels are clearly blue-purple and some green/yellow
    assert (region[:, 2] > region[:, 0] + 40).any() and (region[:, 1] > 150).any()
