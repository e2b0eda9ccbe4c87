"""Point-query latency of the HTTP service vs opening the store per request (SYNTHETIC store).

    python tests/benchmarks/bench_query.py [--large] [--out bench_query.json]

Builds a store of 50 members × 40 leads × 5 variables (temperature, geopotential, u/v wind at 500 and
850 hPa, 2m_temperature) on a 64×32 grid (``--large``: 240×121, one level), starts ``velocast serve`` in
a subprocess (real uvicorn on loopback), and times point queries (ensemble mean, spread and 3
quantiles over all leads, nearest grid point) from 1 and 32 concurrent clients (threads with their own
keep-alive http.client connection, spread over 4 client processes; bounded request counts, after one
warm-up pass over the query points). The baseline is a server answering the same queries by opening
the store with plain xarray per request. Prints the table and the speed-up; writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

VARIABLES = ("temperature", "geopotential", "u_component_of_wind", "v_component_of_wind", "2m_temperature")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_store(path: Path, *, grid: tuple[int, int], levels: tuple[int, ...], members: int, leads: int) -> None:
    from pipeline.forecast_store import ForecastStore, synthetic_forecast

    store = ForecastStore.create(path)
    prov = {"source": "SYNTHETIC benchmark data", "config": {}, "checkpoint": None, "data_snapshot": None}
    ds = synthetic_forecast("2020-01-01T00", members=members, leads=leads, variables=VARIABLES, grid=grid,
                            levels=levels)
    store.append_cycle(ds, provenance=prov, message="SYNTHETIC benchmark cycle")


def queries(n: int, levels: tuple[int, ...], seed: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        var = VARIABLES[int(rng.integers(len(VARIABLES)))]
        q: dict[str, object] = {"variable": var, "lat": round(float(rng.uniform(-85, 85)), 2),
                                "lon": round(float(rng.uniform(0, 360)), 2), "quantiles": "0.1,0.5,0.9"}
        if var != "2m_temperature":
            q["level"] = int(levels[int(rng.integers(len(levels)))])
        out.append(q)
    return out


def start_server(args: list[str], port: int) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def _client_threads(url: str, paths: list[str], clients: int, per_client: int, offset: int,
                    start_at: float) -> tuple[list[float], float]:
    """``clients`` threads, each with its own keep-alive connection, sending ``per_client`` requests
    back to back from wall-clock time ``start_at`` (so several client processes start together);
    returns the latencies and the wall time in seconds (raises on any non-200 answer)."""
    import http.client
    from urllib.parse import urlsplit

    host = urlsplit(url)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)
    started: list[float] = []

    def worker(k: int) -> None:
        mine = []
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
        conn.request("GET", "/health")
        conn.getresponse().read()
        if barrier.wait() == 0:
            time.sleep(max(0.0, start_at - time.time()))
            started.append(time.perf_counter())
        barrier.wait()
        for i in range(per_client):
            t0 = time.perf_counter()
            conn.request("GET", paths[((offset + k) * per_client + i) % len(paths)])
            resp = conn.getresponse()
            body = resp.read()
            mine.append(time.perf_counter() - t0)
            if resp.status != 200:
                errors.append(body.decode(errors="replace"))
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started[0]
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0][:300]}")
    return latencies, wall


def load(url: str, qs: list[dict[str, object]], *, clients: int, per_client: int, procs: int = 1) -> dict[str, float]:
    """Closed-loop load from ``clients`` concurrent clients (stdlib ``http.client``, the lightest client,
    so the numbers are mostly the server's), spread over ``procs`` client processes so that one
    process's GIL does not queue the clients."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    from urllib.parse import urlencode

    paths = [f"/v1/point?{urlencode(q)}" for q in qs]
    if procs <= 1:
        latencies, wall = _client_threads(url, paths, clients, per_client, 0, time.time())
    else:
        per_proc = clients // procs
        with ProcessPoolExecutor(procs, mp_context=get_context("spawn")) as pool:
            start_at = time.time() + 5.0  # after every process has started and connected
            futures = [pool.submit(_client_threads, url, paths, per_proc, per_client, p * per_proc, start_at)
                       for p in range(procs)]
            parts = [f.result() for f in futures]
        latencies = [x for lat, _ in parts for x in lat]
        wall = max(w for _, w in parts)
    ms = np.asarray(latencies) * 1e3
    return {"clients": clients, "client_processes": procs, "requests": len(ms),
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "throughput_rps": len(ms) / wall}


# ----------------------------------------------------------------------------- baseline server
def baseline_app(location: str):
    """Per request: open the Icechunk repository, open the Dataset with plain xarray, select the
    nearest point, load, compute the same statistics."""
    import icechunk
    import xarray as xr
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/point")
    def point(variable: str, lat: float, lon: float, level: float | None = None, quantiles: str = "") -> dict:
        repo = icechunk.Repository.open(icechunk.local_filesystem_storage(location))
        session = repo.readonly_session(branch="main")
        ds = xr.open_zarr(session.store, consolidated=False, zarr_format=3, decode_timedelta=True)
        da = ds[variable].isel(init_time=-1)
        if level is not None:
            da = da.sel(level=level)
        da = da.sel(latitude=lat, longitude=lon % 360, method="nearest").load()
        qs = [float(q) for q in quantiles.split(",") if q]
        values = da.values  # (lead, member)
        return {"units": da.attrs.get("units"), "mean": values.mean(1).tolist(),
                "spread": values.std(1, ddof=1).tolist(),
                **{f"q{q}": np.quantile(values, q, axis=1).tolist() for q in qs}}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", action="store_true", help="240×121 grid (one level) instead of 64×32")
    parser.add_argument("--requests", type=int, default=400, help="requests for the 1-client run")
    parser.add_argument("--per-client", type=int, default=30, help="requests per client in the 32-client run")
    parser.add_argument("--baseline-requests", type=int, default=30)
    parser.add_argument("--client-procs", type=int, default=4, help="client processes for the 32-client runs")
    parser.add_argument("--out", type=Path, default=Path("bench_query.json"))
    parser.add_argument("--store", type=Path, help="reuse/keep the store here")
    parser.add_argument("--serve-baseline", nargs=2, metavar=("STORE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_baseline:
        import uvicorn

        uvicorn.run(baseline_app(args.serve_baseline[0]), host="127.0.0.1", port=int(args.serve_baseline[1]),
                    log_level="warning", access_log=False)
        return

    grid, levels = ((240, 121), (500,)) if args.large else ((64, 32), (500, 850))
    members, leads = 50, 40
    tmp = Path(tempfile.mkdtemp(prefix="bench-query-"))
    store = args.store or tmp / "store.icechunk"
    try:
        if not store.exists():
            t0 = time.perf_counter()
            build_store(store, grid=grid, levels=levels, members=members, leads=leads)
            print(f"built SYNTHETIC store {store} in {time.perf_counter() - t0:.1f} s", flush=True)
        qs = queries(200, levels)
        results: dict[str, dict[str, float]] = {}

        port = free_port()
        server = start_server([sys.executable, "-m", "pipeline", "serve", str(store), "--port", str(port)], port)
        try:
            url = f"http://127.0.0.1:{port}"
            warm = load(url, qs, clients=1, per_client=len(qs))  # warm-up pass: fills the chunk cache
            results["service_warmup_1"] = warm
            results["service_1"] = load(url, qs, clients=1, per_client=args.requests)
            results["service_32"] = load(url, qs, clients=32, per_client=args.per_client, procs=args.client_procs)
        finally:
            server.terminate()
            server.wait(timeout=30)

        port = free_port()
        base = start_server([sys.executable, __file__, "--serve-baseline", str(store), str(port)], port)
        try:
            url = f"http://127.0.0.1:{port}"
            results["baseline_1"] = load(url, qs, clients=1, per_client=args.baseline_requests)
            results["baseline_32"] = load(url, qs, clients=32, per_client=2, procs=args.client_procs)
        finally:
            base.terminate()
            base.wait(timeout=30)
    finally:
        if args.store is None:
            shutil.rmtree(tmp, ignore_errors=True)

    ratio_1 = results["baseline_1"]["p50_ms"] / results["service_1"]["p50_ms"]
    ratio_32 = results["baseline_32"]["p50_ms"] / results["service_32"]["p50_ms"]
    header = f"{'run':28s} {'clients':>7s} {'requests':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>8s}"
    print(f"\nstore: {members} members × {leads} leads × {len(VARIABLES)} variables, grid {grid[0]}×{grid[1]}, "
          f"levels {levels}, {os.cpu_count()} CPUs")
    print(header)
    names = {"service_warmup_1": "service (warm-up pass)", "service_1": "service", "service_32": "service",
             "baseline_1": "baseline (open per request)", "baseline_32": "baseline (open per request)"}
    for key, row in results.items():
        print(f"{names[key]:28s} {row['clients']:7d} {row['requests']:8d} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f}"
              f" {row['throughput_rps']:8.1f}")
    print(f"speed-up (baseline p50 / service p50): {ratio_1:.0f}× with 1 client, {ratio_32:.0f}× with 32 clients")
    doc = {"grid": list(grid), "levels": list(levels), "members": members, "leads": leads,
           "variables": list(VARIABLES), "cpus": os.cpu_count(), "results": results,
           "speedup_p50_1": ratio_1, "speedup_p50_32": ratio_32}
    args.out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
