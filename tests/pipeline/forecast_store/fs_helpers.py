"""Helpers and fixtures for forecast-store tests: small synthetic stores (SYNTHETIC data, never real forecasts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Self

import pytest

PROV = {"source": "synthetic test data", "config": {"test": True}, "checkpoint": None, "data_snapshot": None}
INITS = ("2020-01-01T00", "2020-01-01T06")
SMALL = {"members": 5, "leads": 4, "grid": (16, 9), "levels": (500, 850)}

WRITER = """
import os, sys, time
from pipeline.forecast_store import ForecastStore, synthetic_forecast
path, init, members, leads, nlon, nlat, go = sys.argv[1:8]
ds = synthetic_forecast(init, members=int(members), leads=int(leads), grid=(int(nlon), int(nlat)))
ds.load()
store = ForecastStore.open(path)
if go != "-":
    print("READY", flush=True)
    while not os.path.exists(go):
        time.sleep(0.002)
print("WRITING", flush=True)
r = store.append_cycle(ds, provenance=dict(source="synthetic", config={}, checkpoint=None, data_snapshot=None))
print(r.action, r.tries, flush=True)
"""


def writer_process(path: Path, init: str, *, go: Path | None = None, members: int = 5, leads: int = 4,
                   grid: tuple[int, int] = (16, 9)) -> subprocess.Popen[str]:
    """A separate Python process that writes one SYNTHETIC cycle. With ``go``, it prints READY once
    prepared and starts writing when the file ``go`` exists (to start several writers together)."""
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), init, str(members), str(leads), str(grid[0]), str(grid[1]),
         str(go) if go is not None else "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with two SYNTHETIC cycles (5 members, 4 leads, 16×9 grid, levels 500/850); chunks of
    3 leads × 4×8 points, so queries cross lead blocks and tiles."""
    from pipeline.forecast_store import ChunkSpec, ForecastStore, synthetic_forecast

    path = tmp_path_factory.mktemp("stores") / "small.icechunk"
    store = ForecastStore.create(path, chunks=ChunkSpec(lead_block=3, tile_lat=4, tile_lon=8))
    for init in INITS:
        store.append_cycle(synthetic_forecast(init, **SMALL), provenance=PROV)
    return path


class ServerThread:
    """The real server ``velocast serve`` runs (uvicorn with the service's configuration) for ``app`` on a free
    loopback port, in a background thread."""

    def __init__(self, app, *, header_timeout_s: float | None = None) -> None:
        import socket
        import threading

        import uvicorn

        from pipeline.forecast_store.service import HEADER_TIMEOUT_S, server_config

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(server_config(app, host="127.0.0.1", port=self.port, log_level="error",
                                                   header_timeout_s=header_timeout_s or HEADER_TIMEOUT_S))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        import time

        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
