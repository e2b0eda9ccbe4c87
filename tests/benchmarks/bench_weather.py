"""Weather benchmark: CRPS / RMSE / SSR per lead for every system, the skill goals, and throughput.

    python tests/benchmarks/bench_weather.py --run-dir runs/weather          # reuse or make a default run
    python tests/benchmarks/bench_weather.py --run-dir /tmp/wq --quick        # the quick path
    python tests/benchmarks/bench_weather.py --run-dir runs/weather --json bench_weather.json

If the run directory has no ``metrics.json`` the whole ``velocast run weather`` pipeline is run first.
Skill goals checked (issue 4): velocast CRPS below persistence, climatology and deterministic_noise at
every lead from 12 h on geopotential_500 and temperature_850; spread/skill in [0.8, 1.2] at leads ≥ 24 h;
velocast CRPS ÷ perfect-model CRPS at 1, 3 and 5 days.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HEADLINE = ("geopotential_500", "temperature_850")


def load_or_run(run_dir: Path, quick: bool) -> dict:
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        from pipeline.runs import run_local
        from pipeline.weather.run import RUN

        run_local(RUN, RUN.configure("quick" if quick else None), run_dir, progress=False)
    return json.loads(metrics_path.read_text())


def throughput(run_dir: Path, metrics: dict) -> dict:
    """Training steps/s (median of logged windows) and forecast samples (member-steps) per second."""
    out: dict = {}
    for name in ("model", "deterministic"):
        log = run_dir / name / "metrics.jsonl"
        if log.exists():
            rates = sorted(json.loads(line)["steps_per_s"] for line in log.read_text().splitlines()
                           if '"steps_per_s"' in line)
            if rates:
                out[f"train_{name}_steps_per_s"] = rates[len(rates) // 2]
    from pipeline.runs import stage_seconds

    timings = stage_seconds(run_dir)
    members = metrics["members"].get("velocast", 1)
    steps = len(metrics["lead_hours"])
    if timings.get("forecast-model"):
        member_steps = metrics["n_init_times"] * members * steps
        out["forecast_member_steps_per_s"] = member_steps / timings["forecast-model"]
        out["forecast_seconds"] = timings["forecast-model"]
    out["nfe_per_step"] = metrics.get("nfe_per_step")
    out["timings_s"] = timings
    return out


def skill_checks(metrics: dict) -> dict:
    leads = metrics["lead_hours"]
    scores = metrics["scores"]
    checks: dict = {"crps_beats": {}, "ssr_in_range": {}, "crps_ratio_to_perfect_model": {}}
    for channel in HEADLINE:
        if channel not in metrics["variables"]:
            continue
        ours = scores["velocast"]["crps"][channel]
        for baseline in ("persistence", "climatology", "deterministic_noise"):
            if baseline in scores:
                theirs = scores[baseline]["crps"][channel]
                checks["crps_beats"][f"{channel} vs {baseline}"] = all(
                    o < b for h, o, b in zip(leads, ours, theirs) if h >= 12)
        ssr = scores["velocast"]["ssr"][channel]
        checks["ssr_in_range"][channel] = all(0.8 <= s <= 1.2 for h, s in zip(leads, ssr) if h >= 24)
        if "perfect_model" in scores:
            pm = scores["perfect_model"]["crps"][channel]
            checks["crps_ratio_to_perfect_model"][channel] = {
                f"{h // 24}d": ours[i] / pm[i] for i, h in enumerate(leads) if h in (24, 72, 120) and pm[i]}
    return checks


def print_tables(metrics: dict) -> None:
    leads = metrics["lead_hours"]
    show = [i for i, h in enumerate(leads) if h in (6, 12, 24, 48, 72, 96, 120, 168, 240)] or list(range(len(leads)))
    for metric in ("crps", "rmse", "ssr"):
        for channel in HEADLINE:
            if channel not in metrics["variables"]:
                continue
            print(f"\n{metric.upper()} {channel}")
            print(f"{'system':<22}" + "".join(f"{leads[i]:>9}h" for i in show))
            for system, by_metric in metrics["scores"].items():
                values = by_metric[metric][channel]
                cells = "".join(f"{'–':>10}" if values[i] is None else f"{values[i]:>10.4g}" for i in show)
                print(f"{system:<22}{cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/weather"))
    parser.add_argument("--quick", action="store_true", help="run the quick pipeline if no run exists")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results (default: RUN/bench.json)")
    args = parser.parse_args(argv)
    metrics = load_or_run(args.run_dir, args.quick)
    print_tables(metrics)
    checks = skill_checks(metrics)
    rates = throughput(args.run_dir, metrics)
    print("\nSkill goals")
    for group, items in checks.items():
        for name, value in items.items():
            print(f"  {group:<28} {name:<42} {value}")
    print("\nThroughput")
    for name, value in rates.items():
        print(f"  {name:<32} {value}")
    result = {"checks": checks, "throughput": rates, "metrics": metrics}
    (args.json or args.run_dir / "bench.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
