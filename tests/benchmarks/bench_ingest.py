"""Ingest benchmark: throughput (MB/s) and peak memory (RSS) of `velocast ingest weather` on SYNTHETIC
ERA5-like NetCDF inputs of sizes 1× and 4× (and optionally a naive in-memory baseline).

    python tests/benchmarks/bench_ingest.py [--small-mb 150] [--factor 4] [--naive] [--out FILE]

Each ingest runs in its own child process (the CLI); peak RSS is that child's ru_maxrss (os.wait4).
Out of core means the peak stays flat when the input grows 4×; the naive baseline
(``xr.open_dataset(...).load().to_zarr(...)``) shows what an in-memory approach costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
import yaml

NLAT, NLON = 64, 128  # 2.8125° grid
LEVELS = (250, 500, 700, 850)
LEVEL_VARS = ("t", "z", "u", "v")
BYTES_PER_STEP = (len(LEVEL_VARS) * len(LEVELS) + 1) * NLAT * NLON * 4


def synthesise(path: Path, mb: float) -> int:
    """Write an ERA5-like NetCDF of about ``mb`` MB (written time slab by time slab: bounded memory)."""
    steps = max(8, int(mb * 1e6 / BYTES_PER_STEP))
    time = pd.date_range("2000-01-01", periods=steps, freq="6h")
    lat = np.linspace(90, -90, NLAT)
    lon = np.arange(NLON) * 360.0 / NLON
    rs = da.random.RandomState(0)
    chunks3 = (16, len(LEVELS), NLAT, NLON)
    base = {"t": (250.0, 10.0, "K"), "z": (50000.0, 1000.0, "m**2 s**-2"), "u": (0.0, 10.0, "m s**-1"),
            "v": (0.0, 10.0, "m s**-1")}
    data = {
        name: (("time", "level", "latitude", "longitude"),
               (mean + std * rs.standard_normal((steps, len(LEVELS), NLAT, NLON), chunks=chunks3)).astype("f4"),
               {"units": unit})
        for name, (mean, std, unit) in base.items()
    }
    data["t2m"] = (("time", "latitude", "longitude"),
                   (280 + 5 * rs.standard_normal((steps, NLAT, NLON), chunks=(16, NLAT, NLON))).astype("f4"),
                   {"units": "K"})
    ds = xr.Dataset(data, coords={"time": time, "level": ("level", np.asarray(LEVELS, np.int32), {"units": "hPa"}),
                                  "latitude": lat, "longitude": lon})
    ds.to_netcdf(path, engine="netcdf4")
    return path.stat().st_size


def run_child(cmd: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit status) of a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(err[-2000:], file=sys.stderr)
    return wall, usage.ru_maxrss / 1024.0, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small-mb", type=float, default=150.0, help="size of the small input, MB")
    parser.add_argument("--factor", type=int, default=4, help="the large input is this many times bigger")
    parser.add_argument("--naive", action="store_true", help="also time an in-memory (load then write) baseline")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=Path("bench_ingest.json"), help="JSON results")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.workdir))
    rows = []
    try:
        for label, mb in (("1x", args.small_mb), (f"{args.factor}x", args.small_mb * args.factor)):
            src = root / f"input-{label}.nc"
            size = synthesise(src, mb)
            recipe = root / f"recipe-{label}.yaml"
            recipe.write_text(yaml.safe_dump({
                "sources": [{"path": str(src)}],
                "variables": {**{v: {"levels": list(LEVELS)} for v in
                                 ("temperature", "geopotential", "u_component_of_wind", "v_component_of_wind")},
                              "2m_temperature": {}},
            }))
            out = root / f"store-{label}.zarr"
            cmd = [sys.executable, "-m", "pipeline", "ingest", "weather", str(recipe), "--out", str(out), "--no-progress"]
            wall, rss, code = run_child(cmd)
            rows.append({"method": "velocast ingest (out of core)", "input": label, "input_mb": size / 1e6,
                         "seconds": wall, "mb_per_s": size / 1e6 / wall, "peak_rss_mib": rss, "exit": code})
            if args.naive:
                naive = root / f"naive-{label}.zarr"
                code_str = (f"import xarray as xr; ds = xr.open_dataset({str(src)!r}).load(); "
                            f"ds.to_zarr({str(naive)!r}, zarr_format=3, consolidated=False)")
                wall, rss, code = run_child([sys.executable, "-c", code_str])
                rows.append({"method": "naive load() + to_zarr", "input": label, "input_mb": size / 1e6,
                             "seconds": wall, "mb_per_s": size / 1e6 / wall, "peak_rss_mib": rss, "exit": code})
            src.unlink()
            shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    header = f"| {'method':<30} | {'input':>5} | {'input MB':>8} | {'seconds':>7} | {'MB/s':>6} | {'peak RSS MiB':>12} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['method']:<30} | {r['input']:>5} | {r['input_mb']:8.0f} | {r['seconds']:7.1f} | "
              f"{r['mb_per_s']:6.1f} | {r['peak_rss_mib']:12.0f} |")
    ours = [r for r in rows if r["method"].startswith("velocast")]
    growth = ours[-1]["peak_rss_mib"] / ours[0]["peak_rss_mib"]
    print(f"peak RSS growth for {args.factor}x input (velocast): {growth:.2f}x")
    args.out.write_text(json.dumps({"rows": rows, "rss_growth": growth, "grid": [NLAT, NLON],
                                    "levels": LEVELS, "cpu_count": os.cpu_count()}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
