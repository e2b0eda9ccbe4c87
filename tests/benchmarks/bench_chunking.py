"""Chunk layout benchmark: cold read time of a point plume (all leads × members at one point) and of a
map (all members at one lead) for several chunk layouts of a forecast store (SYNTHETIC data).

    python tests/benchmarks/bench_chunking.py [--grid 64x32] [--members 50] [--leads 40] [--out FILE]

Each read uses a fresh reader (no chunk cache), so it measures fetch + decode of the chunks touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.forecast_store import ChunkSpec, ForecastStore, synthetic_forecast
from pipeline.forecast_store.query import SnapshotReader

LAYOUTS = {
    "all leads, tile 16x16": ChunkSpec(lead_block=0, tile_lat=16, tile_lon=16),
    "all leads, tile 32x32": ChunkSpec(lead_block=0, tile_lat=32, tile_lon=32),
    "all leads, tile 64x64": ChunkSpec(lead_block=0, tile_lat=64, tile_lon=64),
    "10 leads, tile 16x16": ChunkSpec(lead_block=10, tile_lat=16, tile_lon=16),
    "10 leads, tile 32x32": ChunkSpec(lead_block=10, tile_lat=32, tile_lon=32),
    "1 lead, whole map": ChunkSpec(lead_block=1, tile_lat=0, tile_lon=0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default="64x32", help="NLONxNLAT")
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--leads", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench_chunking.json"))
    args = parser.parse_args()
    nlon, nlat = (int(x) for x in args.grid.split("x"))
    ds = synthetic_forecast("2020-01-01", members=args.members, leads=args.leads, variables=("temperature",),
                            grid=(nlon, nlat), levels=(500,))
    ds.load()
    rng = np.random.default_rng(0)
    rows = []
    root = Path(tempfile.mkdtemp(prefix="bench-chunking-"))
    try:
        for name, spec in LAYOUTS.items():
            path = root / name.replace(" ", "_").replace(",", "")
            store = ForecastStore.create(path, chunks=spec)
            t0 = time.perf_counter()
            store.append_cycle(ds, provenance={"source": "SYNTHETIC benchmark", "config": {}, "checkpoint": None,
                                               "data_snapshot": None})
            write_s = time.perf_counter() - t0
            point_ms, map_ms = [], []
            for _ in range(args.repeats):
                reader = SnapshotReader(store, cache_bytes=0)
                lat, lon = rng.uniform(-80, 80), rng.uniform(0, 360)
                t0 = time.perf_counter()
                reader.point(variable="temperature", level=500, lat=lat, lon=lon)
                point_ms.append(1e3 * (time.perf_counter() - t0))
                reader = SnapshotReader(store, cache_bytes=0)
                lead = int(rng.integers(1, args.leads + 1)) * 6
                t0 = time.perf_counter()
                reader.grid(variable="temperature", level=500, lead=lead)
                map_ms.append(1e3 * (time.perf_counter() - t0))
            chunk = store.dataset()["temperature"].encoding["chunks"]
            rows.append({"layout": name, "chunk": list(chunk), "chunk_mb": float(np.prod(chunk) * 4 / 2**20),
                         "point_ms": statistics.median(point_ms), "map_ms": statistics.median(map_ms),
                         "write_s": write_s})
            print(f"{name:24s} chunk={chunk} ({rows[-1]['chunk_mb']:.2f} MB)  point {rows[-1]['point_ms']:7.1f} ms"
                  f"  map {rows[-1]['map_ms']:7.1f} ms  write {write_s:5.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {"grid": args.grid, "members": args.members, "leads": args.leads, "rows": rows}
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
