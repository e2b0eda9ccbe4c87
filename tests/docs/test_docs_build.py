"""The documentation site builds with warnings as errors (`mkdocs build --strict`): every page in the nav,
every link and anchor resolves, and the generated reference pages (CLI, config, HTTP API, run layouts) build
from the code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          check=False, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    for page in ("index.html", "reference/cli/index.html", "reference/config/index.html",
                 "reference/http-api/index.html", "reference/openapi.json"):
        assert (site / page).is_file(), f"{page} was not built"
    cli = (site / "reference/cli/index.html").read_text()
    assert "velocast run weather" in cli and "--quick" in cli, "the CLI reference is generated from the app"
    assert "RunWeatherConfig" in (site / "reference/config/index.html").read_text()
    assert "/v1/point" in (site / "reference/http-api/index.html").read_text()
    shutil.rmtree(site)
