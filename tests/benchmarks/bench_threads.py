"""Threads benchmark: training steps/s of the weather U-Net at 1, 2, … torch threads, on a quiet machine and with
one core kept busy by another process, and the count velocast chooses in each case.

    python tests/benchmarks/bench_threads.py                 # prints the table, writes bench_threads.json
    python tests/benchmarks/bench_threads.py --steps 40 --json out.json

velocast is asked for its choice before each condition's measurements (which load the machine themselves): "quiet"
first waits for the 1-minute load average to fall below ``--quiet-load``; "loaded" lets the busy loop run
``--settle`` seconds, so the load average (a 1-minute mean) sees it.

Each configuration runs in a fresh process (torch fixes its thread pool at start): a 30 × 53 regional grid (the
regional development case's), the default weather network (base 48, levels [1, 2, 2], 2 blocks, attention),
batch 16, a few warm-up steps then ``--steps`` timed forward + backward + optimiser steps. "Loaded" starts a busy
loop on one core (another user's job) for the duration.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

WORKER = r"""
import sys, time, torch
from pipeline.weather.modeling.model import NetworkConfig, build_network
import numpy as np
threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
lat, lon = np.linspace(25, 70, 30), np.linspace(-39, 39, 53)
net = build_network(NetworkConfig(), channels=1, condition_channels=2 + 5 + 3, latitude=lat, longitude=lon)
opt = torch.optim.Adam(net.parameters(), 1e-4)
x = torch.randn(16, 1, 30, 53); t = torch.rand(16)
cond = {"fields": torch.randn(16, 10, 30, 53), "globals": torch.randn(16, 4)}
def step():
    opt.zero_grad(); net(x, t, cond).square().mean().backward(); opt.step()
for _ in range(3):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
print(steps / (time.perf_counter() - start))
"""


def _busy(stop) -> None:  # type: ignore[no-untyped-def]
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def measure(threads: int, steps: int) -> float:
    done = subprocess.run([sys.executable, "-c", WORKER, str(threads), str(steps)], capture_output=True, text=True,
                          check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return float(done.stdout.strip().splitlines()[-1])


def settle_until(load: float, *, timeout: float) -> None:
    """Wait (at most ``timeout`` s) until the 1-minute load average is below ``load``."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] >= load and time.monotonic() < deadline:
        time.sleep(2.0)


def chosen() -> str:
    """What ``models.threads.choose_threads`` picks now, with no explicit request in the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "VELOCAST_THREADS")}
    code = "from models.threads import choose_threads; print(choose_threads().describe())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=env).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--json", type=Path, default=Path("bench_threads.json"))
    parser.add_argument("--settle", type=float, default=60.0, help="seconds the busy loop runs before velocast is asked")
    parser.add_argument("--quiet-load", type=float, default=0.5, help="the load 'quiet' waits for (at most 3 × settle)")
    args = parser.parse_args(argv)
    from models.threads import available_cpus

    counts = sorted({1, 2, available_cpus()})
    rows: dict[str, dict] = {}
    for condition in ("quiet", "loaded"):
        stop = mp.Event()
        hog = mp.Process(target=_busy, args=(stop,)) if condition == "loaded" else None
        if hog is not None:
            hog.start()
            time.sleep(args.settle)  # the 1-minute load average velocast reads has to see the busy core
        else:
            settle_until(args.quiet_load, timeout=args.settle * 3)
        try:
            choice, load = chosen(), round(os.getloadavg()[0], 2)  # asked before this benchmark adds load itself
            rows[condition] = {"steps_per_s": {n: round(measure(n, args.steps), 3) for n in counts},
                               "velocast_chooses": choice, "load_1min": load}
        finally:
            if hog is not None:
                stop.set()
                hog.join()
    print(f"{'condition':<10}" + "".join(f"{f'{n} thread(s)':>14}" for n in counts) + "   velocast chooses")
    for condition, row in rows.items():
        print(f"{condition:<10}" + "".join(f"{row['steps_per_s'][n]:>12.2f}/s" for n in counts)
              + f"   {row['velocast_chooses']}")
    args.json.write_text(json.dumps({"cpus": available_cpus(), "steps": args.steps, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
