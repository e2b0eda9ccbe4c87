"""MD speed of the embedded alanine-dipeptide simulation per OpenMM platform and solvent.

    python tests/benchmarks/bench_protein_md.py [--ps 100] [--platforms Reference CPU] \
        [--out bench_protein_md.json]

Each configuration runs one replica (minimisation, no equilibration, then ``--ps`` picoseconds saving a
frame every ps, exactly as ``velocast simulate peptide`` does) in this process, single-threaded where
the platform allows (CPU platform: ``Threads=1``, so numbers are per core). It reports ns/day of wall
time and ns per CPU-day (the latter does not depend on other load on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ps", type=float, default=100.0, help="production picoseconds per configuration")
    parser.add_argument("--platforms", nargs="+", default=["Reference", "CPU"])
    parser.add_argument("--out", type=Path, default=Path("bench_protein_md.json"))
    args = parser.parse_args()
    os.environ.setdefault("OPENMM_CPU_THREADS", "1")

    from pipeline.protein.simulate import PeptideSimulation, run_replica

    rows = []
    for platform in args.platforms:
        for vacuum in (False, True):
            params = PeptideSimulation(ns=args.ps / 1000.0, seed=0, vacuum=vacuum, equilibrate_ps=0.0)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = run_replica(params, 0, platform)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            prod = result["production_wall_seconds"]
            rows.append(
                {
                    "platform": platform,
                    "solvent": "vacuum" if vacuum else "OBC2",
                    "ps": args.ps,
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "ns_per_day_wall": params.ns / (prod / 86400.0),
                    "ns_per_cpu_day": params.ns / (cpu / 86400.0),
                }
            )
            r = rows[-1]
            print(
                f"{platform:10s} {r['solvent']:7s} {args.ps:6.0f} ps  wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
                f"{r['ns_per_day_wall']:8,.0f} ns/day (wall)  {r['ns_per_cpu_day']:8,.0f} ns/CPU-day",
                flush=True,
            )
    load = os.getloadavg()
    args.out.write_text(json.dumps({"rows": rows, "loadavg": load, "cores": os.cpu_count()}, indent=2))
    print(f"load average during the run: {load[0]:.1f} on {os.cpu_count()} cores; wrote {args.out}")


if __name__ == "__main__":
    main()
