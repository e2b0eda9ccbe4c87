"""Protein benchmark: the quality and cost goals of the alanine-dipeptide main job.

    python tests/benchmarks/bench_protein.py --run-dir runs/protein            # reuse or make a default run
    python tests/benchmarks/bench_protein.py --run-dir /tmp/pq --quick          # the quick path

If the run directory has no ``metrics.json`` the whole ``velocast run protein`` pipeline is run first.
Goals (issue 5): rama_js ≤ rama_js_training + 0.03 (equal-sized sets, see the report); αR population of
the samples within 0.03 of the training data's and the training data's within 0.03 of the reference;
≥ 99 % of samples with every bond within 0.1 Å of the force field; samples per CPU-second ≥ 100 × the
MD's independent samples per CPU-second. Issue 22: the two slowest implied timescales of the forecast
trajectories within 30 % of the reference MD's (an MSM of the same core-set basins at the forecast's lag).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load_or_run(run_dir: Path, quick: bool) -> dict:
    path = run_dir / "metrics.json"
    if not path.exists():
        from pipeline.protein.run import RUN
        from pipeline.runs import run_local

        run_local(RUN, RUN.configure("quick" if quick else None), run_dir, progress=False)
    return json.loads(path.read_text())


def goals(metrics: dict) -> list[tuple[str, str, bool | None]]:
    """(goal, measured, met) rows."""
    basins = metrics["basins"]
    rows: list[tuple[str, str, bool | None]] = []
    js, js_train = metrics["rama_js"], metrics.get("rama_js_training")
    rows.append(("rama_js <= rama_js_training + 0.03", f"{js:.4f} vs {js_train:.4f} + 0.03",
                 None if js_train is None else js <= js_train + 0.03))
    a_s, a_t, a_r = (basins[k]["alpha_r"] for k in ("samples", "training", "reference"))
    rows.append(("|alpha_R samples - training| <= 0.03", f"{a_s:.3f} vs {a_t:.3f}", abs(a_s - a_t) <= 0.03))
    rows.append(("|alpha_R training - reference| <= 0.03", f"{a_t:.3f} vs {a_r:.3f}", abs(a_t - a_r) <= 0.03))
    ref_valid = metrics.get("reference_valid_fraction")
    rows.append(("valid_fraction >= 0.99", f"{metrics['valid_fraction']:.4f} (reference MD: "
                 f"{'–' if ref_valid is None else f'{ref_valid:.4f}'})", metrics["valid_fraction"] >= 0.99))
    speed, md = metrics.get("samples_per_cpu_second"), metrics.get("md_independent_samples_per_cpu_second")
    ratio = speed / md if speed and md else None
    rows.append(("samples_per_cpu_second >= 100 x MD independent", f"{speed:,.0f} vs {md:.3g} (x{ratio:,.0f})"
                 if ratio else "–", None if ratio is None else ratio >= 100))
    its = (metrics.get("forecast") or {}).get("implied_timescales")
    if its:
        pairs = [(s, r) for s, r in zip(its["samples"], its["reference"])]
        shown = ", ".join("–" if s is None or r is None else f"{s:.1f}/{r:.1f} ps" for s, r in pairs)
        met = all(s is not None and r is not None and abs(s / r - 1) <= 0.3 for s, r in pairs)
        rows.append(("forecast implied timescales within 30 % of MD", shown + " (slowest two)", met))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/protein"))
    parser.add_argument("--quick", action="store_true", help="run the quick pipeline if no run exists")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results (default: RUN/bench.json)")
    args = parser.parse_args(argv)
    metrics = load_or_run(args.run_dir, args.quick)
    rows = goals(metrics)
    print(f"{'goal':<50} {'measured':<44} met")
    for goal, measured, met in rows:
        print(f"{goal:<50} {measured:<44} {'–' if met is None else ('yes' if met else 'NO')}")
    print("\nbasin populations (beta / alpha_R / alpha_L)")
    for name, pops in metrics["basins"].items():
        print(f"  {name:<10} {pops['beta']:.3f} / {pops['alpha_r']:.3f} / {pops['alpha_l']:.3f}")
    forecast = metrics.get("forecast") or {}
    if forecast.get("rama_js") is not None:
        print(f"\nforecast trajectories: rama_js {forecast['rama_js']:.4f}, valid {forecast['valid_fraction']:.4f}")
    its = forecast.get("implied_timescales")
    if its and its.get("samples_ci95"):
        print(f"implied timescales at lag {its['lag_ps']:g} ps (ps, 95 % credible intervals of the Bayesian MSM):")
        for name in ("samples", "reference"):
            print(f"  {name:<10} " + "; ".join("–" if v is None else f"{v:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"
                                             for v, ci in zip(its[name], its[f"{name}_ci95"])))
    from pipeline.runs import stage_seconds

    print(f"\nstage timings (s): {stage_seconds(args.run_dir)}")
    result = {"goals": [{"goal": g, "measured": m, "met": ok} for g, m, ok in rows], "metrics": metrics}
    (args.json or args.run_dir / "bench.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
