"""Shared test fixtures, and the environment every test runs in.

Retries are made quick (``VELOCAST_RETRY_BACKOFF``, ``VELOCAST_FLOW_RETRIES``) and Prefect's home is a
temporary directory; both are set here, before any velocast module reads them, and flow-run and worker
subprocesses inherit them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="velocast-prefect-home-")
os.environ.setdefault("VELOCAST_RETRY_BACKOFF", "0.2")
os.environ.setdefault("VELOCAST_FLOW_RETRIES", "2")
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (a user's fresh clone has none)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prefect_server():
    """A real local Prefect server (SQLite in a temp dir) for every test that needs one; yields its API URL.
    PREFECT_API_URL is exported so worker and flow-run subprocesses talk to it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url
        yield url
        os.environ.pop("PREFECT_API_URL", None)


def _tmpfs(path: Path, options: str):
    """Mount a tmpfs at ``path`` (needs root and a kernel that lets this sandbox mount); skip otherwise."""
    import shutil
    import subprocess

    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A real read-only file system (a read-only tmpfs)."""
    yield from _tmpfs(tmp_path / "read-only", "ro,size=64k")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 512 KiB file system, to fill up (ENOSPC)."""
    yield from _tmpfs(tmp_path / "small-disk", "size=512k")
