"""`velocast query ...` and `velocast serve` from the command line (SYNTHETIC store)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import xarray as xr

from tests.killing import leftovers, run_killed_at


def velocast(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``velocast ARGS`` in this process (the real CLI entry point; stdout/stderr captured)."""
    import contextlib
    import io

    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def test_query_commands_print_json_csv_and_write_netcdf(small_store: Path, tmp_path: Path) -> None:
    """point (JSON), region (CSV) and probability (NetCDF file) answer with units; bad input exits 2."""
    store = str(small_store)
    point = velocast("query", "point", store, "-V", "temperature", "-l", "850", "--lat", "45", "--lon", "-10",
                     "-q", "0.1,0.9", "--method", "bilinear")
    assert point.returncode == 0, point.stderr
    doc = json.loads(point.stdout)
    assert doc["units"] == "K" and doc["method"] == "bilinear" and "q90" in doc["fields"]
    region = velocast("query", "region", store, "-V", "2m_temperature", "--lat-min", "-30", "--lat-max", "30",
                      "--lon-min", "330", "--lon-max", "30", "--lead", "12h", "-f", "csv")
    assert region.returncode == 0, region.stderr
    assert "# units: K" in region.stdout and region.stdout.count("\n") > 10
    out = tmp_path / "prob.nc"
    prob = velocast("query", "probability", store, "-V", "2m_temperature", "-t", "290", "--below",
                    "--lat", "0", "--lon", "0", "-f", "netcdf", "-o", str(out))
    assert prob.returncode == 0, prob.stderr
    assert xr.open_dataset(out).attrs["direction"] == "below"
    bad = velocast("query", "point", store, "-V", "nope", "--lat", "0", "--lon", "0")
    assert bad.returncode == 2 and "unknown variable 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    missing = velocast("query", "info", str(tmp_path / "absent"))
    assert missing.returncode == 2 and "no forecast store" in missing.stderr
    info = velocast("query", "info", store)
    assert info.returncode == 0 and len(json.loads(info.stdout)["cycles"]) == 2


def test_serve_command_answers_over_http(small_store: Path, tmp_path: Path) -> None:
    """`velocast serve STORE --port P --token-file F` serves health and token-protected queries (the token
    never on the command line)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "token").write_text("t0k\n")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", str(small_store), "--port", str(port),
                             "--token-file", str(tmp_path / "token")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        params = {"variable": "2m_temperature", "lat": 10, "lon": 10}
        assert httpx.get(url + "/v1/point", params=params).status_code == 401
        r = httpx.get(url + "/v1/point", params=params, headers={"Authorization": "Bearer t0k"})
        assert r.status_code == 200 and r.json()["units"] == "K"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_killed_query_output_keeps_the_previous_file(tmp_path: Path, small_store: Path) -> None:
    """``query --out``: SIGKILL before the rename leaves the previous answer intact and a temporary the next
    query removes."""
    out = tmp_path / "plume.json"
    args = ("query", "point", str(small_store), "-V", "temperature", "-l", "500", "--lat", "10", "--lon", "20",
            "--out", str(out))
    assert velocast(*args).returncode == 0
    previous = out.read_bytes()
    run_killed_at("os:replace", args)
    assert out.read_bytes() == previous and len(leftovers(tmp_path)) == 1
    assert velocast(*args).returncode == 0 and leftovers(tmp_path) == []


def test_query_out_a_directory_or_a_full_disk_is_one_line(small_store: Path, tmp_path: Path, small_disk: Path) -> None:
    """``--out`` naming a directory, or a disk that fills while the answer is written: one line naming the
    output, exit 2, and nothing left beside it."""
    args = ("query", "region", str(small_store), "-V", "temperature", "-l", "500", "--lat-min", "-90", "--lat-max",
            "90", "--lon-min", "0", "--lon-max", "359", "--lead", "6h", "--members", "-f", "netcdf", "--out")
    (tmp_path / "answer").mkdir()
    folder = velocast(*args, str(tmp_path / "answer"))
    assert folder.returncode == 2 and "answer: is a directory; give --out a file name" in folder.stderr
    import os

    free = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"x" * (free.f_bavail * free.f_frsize - 1024))  # 1 KiB left
    full = velocast(*args, str(small_disk / "a.nc"))
    assert full.returncode == 2 and "a.nc: cannot write the answer: no space left" in full.stderr, full.stderr
    assert full.stderr.strip().count("\n") == 0 and [p.name for p in small_disk.iterdir()] == ["filler"]
