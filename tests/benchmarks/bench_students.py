"""One- and two-call students of the default weather run against their teacher, on the run's own test cases.

    python tests/benchmarks/bench_students.py --run-dir runs/weather                        # reflow and crps at 1 call
    python tests/benchmarks/bench_students.py --run-dir runs/weather --calls 1,2 --minutes 6 --json students.json
    python tests/benchmarks/bench_students.py --protein-run runs/protein --methods reflow,energy --minutes 3

For every method (``--methods``: reflow, crps, energy) and calls per forecast step (``--calls``), the
teacher of a finished ``velocast run weather`` (``RUN/model``) is distilled with the same *training*
wall-clock (``--minutes``; reflow first spends its own time sampling teacher pairs, reported apart), then the
student goes through the run's own stages: calibrate (the run's validation init times, members, λ grid, ρ and
spread factors), forecast (the run's test init times and members) and evaluate against the run's truth.
Printed per lead: the student's fair CRPS ÷ the teacher's (the run's ``metrics.json``) for Z500 and T850,
the spread/skill ratio, and the forecast wall-clock per member-step; then the issue's goals (1 call: CRPS
within 3 % of the teacher at every lead from 12 h to 5 days, spread/skill in [0.8, 1.2]). JSON: ``--json``.

With ``--protein-run`` (a finished ``velocast run protein``) the run's ensemble model is distilled the same way,
the student draws the run's number of conformations at its own calls, and ``velocast evaluate protein`` scores
them against the run's reference MD: Ramachandran JS and the αR population next to the teacher's (the run's
``metrics.json``), and the goal (1 call: JS within 0.02 of the teacher's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HEADLINE = ("geopotential_500", "temperature_850")


def distil(out: Path, config_model: type, run: object, *, teacher: Path, method: str, calls: int, members: int,
           minutes: float, refresh: bool) -> dict[str, float]:
    """Distil ``teacher`` into ``out/model`` (unless there) with ``minutes`` of training; returns the timings."""
    import shutil

    if refresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    if not (out / "model" / "checkpoints").exists():
        start = time.perf_counter()
        reflow = config_model.model_fields["reflow"].default.model_copy(update={
            "method": method, "student_steps": calls, "members": members, "steps": 1_000_000, "max_minutes": minutes})
        summary = run(config_model(model=str(teacher), reflow=reflow), out=out / "model", progress=False)
        seconds["distill"] = round(time.perf_counter() - start, 1)
        seconds["distill_training"] = round(summary.get("seconds") or 0.0, 1)
        (out / "distill.json").write_text(json.dumps(summary, indent=1, default=str))
    return seconds


def student(run_dir: Path, out: Path, *, method: str, calls: int, minutes: float, members: int,
            refresh: bool) -> dict:
    """Distil, calibrate, forecast and evaluate one student; returns its metrics and timings."""
    from pipeline.weather.modeling.distill import DistillWeatherConfig, distill_weather

    seconds = distil(out, DistillWeatherConfig, distill_weather, teacher=run_dir / "model", method=method,
                     calls=calls, members=members, minutes=minutes, refresh=refresh)
    entry = score_weather_model(run_dir, out / "model", out, seconds=seconds)
    return {"method": method, "calls": calls, **entry}


def score_weather_model(run_dir: Path, model: Path, out: Path, *, sampler: str | None = None,
                        sampler_steps: int | None = None, seconds: dict[str, float] | None = None) -> dict:
    """Take ``model`` through the weather run's own calibrate (unless its calibration.json has spread
    factors), forecast (the run's test init times and members, at ``sampler`` × ``sampler_steps`` or the
    model's own) and evaluate stages, into ``out``; returns the metrics and timings."""
    from pipeline.weather.modeling.calibrate import CalibrateConfig, calibrate_spread
    from pipeline.weather.modeling.evaluate import EvaluateConfig, evaluate_weather
    from pipeline.weather.modeling.generate import ForecastConfig, forecast_weather
    from pipeline.weather.run import RunWeatherConfig

    config = RunWeatherConfig.model_validate_json((run_dir / "run_config.json").read_text())
    forecast, report = out / "forecast.icechunk", out / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    seconds = dict(seconds or {})
    if not (model / "calibration.json").exists() or "spread_factors" not in json.loads(
            (model / "calibration.json").read_text()):
        start = time.perf_counter()
        calibrate_spread(CalibrateConfig(
            model=str(model), data=str(run_dir / "atmosphere.zarr"),
            init_times=[t.isoformat() for t in config.calibration_inits()], members=config.calibration_members,
            lead_hours=config.lead_days * 24, min_lead_hours=min(24.0, config.lead_days * 24),
            noise_scales=config.calibration_noise_scales, noise_memories=[config.noise_memory],
            per_variable=config.calibration_per_variable, spread_factors=config.spread_factors, seed=config.seed),
            progress=False)
        seconds["calibrate"] = round(time.perf_counter() - start, 1)
    if not forecast.exists():
        start = time.perf_counter()
        forecast_weather(ForecastConfig(model=str(model), data=str(run_dir / "atmosphere.zarr"),
                                        init_times=[t.isoformat() for t in config.periods()[2]],
                                        lead=f"{config.lead_days * 24:g}h", members=config.members,
                                        sampler=sampler, sampler_steps=sampler_steps, seed=config.seed),
                         out=forecast, progress=False)
        seconds["forecast"] = round(time.perf_counter() - start, 1)
    if not (report / "metrics.json").exists():
        evaluate_weather(EvaluateConfig(forecast=str(forecast), truth=str(run_dir / "atmosphere.zarr"),
                                        seed=config.seed), out=report, progress=False)
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() else {}
    timings.update(seconds)
    (out / "timings.json").write_text(json.dumps(timings, indent=1))
    metrics = json.loads((report / "metrics.json").read_text())
    steps = metrics["n_init_times"] * metrics["members"]["velocast"] * len(metrics["lead_hours"])
    return {"metrics": metrics, "seconds": timings,
            "forecast_ms_per_member_step": 1000.0 * timings.get("forecast", float("nan")) / steps}


def protein_student(run_dir: Path, out: Path, *, method: str, calls: int, minutes: float, members: int,
                    refresh: bool) -> dict:
    """Distil the protein run's ensemble model, sample the run's number of conformations, evaluate them."""
    from pipeline.protein.modeling.distill import DistillProteinConfig, distill_protein

    seconds = distil(out, DistillProteinConfig, distill_protein, teacher=run_dir / "ensemble_model", method=method,
                     calls=calls, members=members, minutes=minutes, refresh=refresh)
    return {"method": method, "calls": calls, **score_protein_model(run_dir, out / "model", out, seconds=seconds)}


def score_protein_model(run_dir: Path, model: Path, out: Path, *, sampler: str | None = None,
                        steps: int | None = None, seconds: dict[str, float] | None = None) -> dict:
    """Draw the protein run's number of conformations from ``model`` (at ``sampler`` × ``steps`` or the
    model's own) into ``out`` and score them with ``velocast evaluate protein`` against the run's reference MD."""
    from pipeline.protein.modeling.evaluate import EvaluateConfig, evaluate_protein
    from pipeline.protein.modeling.generate import SampleConfig, sample_protein
    from pipeline.protein.run import RunProteinConfig

    config = RunProteinConfig.model_validate_json((run_dir / "run_config.json").read_text())
    samples, report = out / "samples", out / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    seconds = dict(seconds or {})
    timings_path = out / "timings.json"
    if not (samples / "samples.zarr").exists():
        start = time.perf_counter()
        sample_protein(SampleConfig(model=str(model), n=config.samples, sampler=sampler, steps=steps,
                                    seed=config.seed, formats=[]), out=samples, progress=False)
        seconds["sample"] = round(time.perf_counter() - start, 1)
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    timings.update(seconds)
    timings_path.write_text(json.dumps(timings, indent=1))
    if not (report / "metrics.json").exists():
        evaluate_protein(EvaluateConfig(samples=str(samples / "samples.zarr"), reference=str(run_dir / "reference.zarr"),
                                        training=str(run_dir / "train.zarr")), out=report, progress=False)
    metrics = json.loads((report / "metrics.json").read_text())
    return {"seconds": timings, "rama_js": metrics.get("rama_js"),
            "basins": (metrics.get("basins") or {}).get("samples", {}),
            "alpha_r": (metrics.get("basins") or {}).get("samples", {}).get("alpha_r"),
            "valid_fraction": metrics.get("valid_fraction"),
            "sample_ms_per_structure": 1000.0 * timings.get("sample", float("nan")) / config.samples}


def protein_main(args: argparse.Namespace) -> int:
    teacher = json.loads((args.protein_run / "metrics.json").read_text())
    root = args.out or args.protein_run / "students"
    results = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        for calls in [int(c) for c in args.calls.split(",") if c.strip()]:
            results.append(protein_student(args.protein_run, root / f"{method}-{calls}", method=method, calls=calls,
                                           minutes=args.minutes, members=args.members, refresh=args.refresh))
    alpha = (teacher.get("basins") or {})
    print(f"\n{'system':<14}{'rama_js':>9}{'alpha_r':>9}{'valid':>8}{'distil s':>10}{'sample s':>10}")
    print(f"{'teacher':<14}{teacher['rama_js']:>9.4f}{alpha.get('samples', {}).get('alpha_r', float('nan')):>9.3f}"
          f"{teacher.get('valid_fraction', float('nan')):>8.3f}")
    print(f"{'reference MD':<14}{'':>9}{alpha.get('reference', {}).get('alpha_r', float('nan')):>9.3f}")
    for entry in results:
        s = entry["seconds"]
        print(f"{entry['method'] + ' x' + str(entry['calls']):<14}{entry['rama_js']:>9.4f}{entry['alpha_r']:>9.3f}"
              f"{entry['valid_fraction']:>8.3f}{s.get('distill', float('nan')):>10.0f}{s.get('sample', float('nan')):>10.1f}")
        entry["js_within_0.02_of_teacher"] = entry["rama_js"] <= teacher["rama_js"] + 0.02
    print("\ngoal (1 call: Ramachandran JS within 0.02 of the teacher's):",
          {f"{e['method']} x{e['calls']}": e["js_within_0.02_of_teacher"] for e in results})
    record = {"teacher_rama_js": teacher["rama_js"], "minutes": args.minutes, "students": results}
    (args.json or root / "bench_students.json").write_text(json.dumps(record, indent=1, default=str))
    return 0


def compare(reference: dict[str, list[float]], leads: list[float], metrics: dict) -> dict:
    """Per headline channel: the fair CRPS of ``metrics`` ÷ ``reference`` (channel → CRPS per lead) and the
    spread/skill per lead, and the goal checks (within 3 % and spread/skill in [0.8, 1.2] from 12 h to 5 days)."""
    out: dict = {"ratio": {}, "ssr": {}, "goals": {}}
    scored = [i for i, h in enumerate(leads) if 12 <= h <= 120]
    for channel in HEADLINE:
        ratio = [o / r for o, r in zip(metrics["scores"]["velocast"]["crps"][channel], reference[channel])]
        ssr = metrics["scores"]["velocast"]["ssr"][channel]
        out["ratio"][channel], out["ssr"][channel] = ratio, ssr
        out["goals"][channel] = {
            "crps_within_3pct_12h_to_5d": all(ratio[i] <= 1.03 for i in scored),
            "worst_ratio_12h_to_5d": max(ratio[i] for i in scored),
            "ssr_in_0.8_1.2_12h_to_5d": all(0.8 <= ssr[i] <= 1.2 for i in scored),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=None, help="a finished `velocast run weather` directory")
    parser.add_argument("--protein-run", type=Path, default=None, help="a finished `velocast run protein` directory")
    parser.add_argument("--out", type=Path, default=None, help="students' directory (default: RUN/students)")
    parser.add_argument("--methods", default="reflow,crps")
    parser.add_argument("--calls", default="1", help="network calls per forecast step, comma-separated")
    parser.add_argument("--minutes", type=float, default=6.0, help="training wall-clock of every student")
    parser.add_argument("--members", type=int, default=2, help="crps / energy members per training window")
    parser.add_argument("--refresh", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.protein_run is not None:
        return protein_main(args)
    if args.run_dir is None:
        parser.error("give --run-dir (weather) or --protein-run")
    teacher = json.loads((args.run_dir / "metrics.json").read_text())
    root = args.out or args.run_dir / "students"
    leads = teacher["lead_hours"]
    picks = [i for i, h in enumerate(leads) if h in (6, 12, 24, 48, 72, 96, 120)]
    results = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        for calls in [int(c) for c in args.calls.split(",") if c.strip()]:
            entry = student(args.run_dir, root / f"{method}-{calls}", method=method, calls=calls,
                            minutes=args.minutes, members=args.members, refresh=args.refresh)
            entry["comparison"] = compare({c: teacher["scores"]["velocast"]["crps"][c] for c in HEADLINE}, leads,
                                          entry["metrics"])
            results.append(entry)
    teacher_nfe = teacher.get("nfe_per_step")
    print(f"\nteacher: {teacher_nfe} network calls per step; students trained {args.minutes:g} min each\n")
    for channel in HEADLINE:
        print(f"{channel}: fair CRPS ÷ teacher's (spread/skill)")
        print(f"{'student':<12}" + "".join(f"{leads[i]:>14g}h" for i in picks))
        for entry in results:
            c = entry["comparison"]
            print(f"{entry['method'] + ' x' + str(entry['calls']):<12}"
                  + "".join(f"{c['ratio'][channel][i]:>8.3f} ({c['ssr'][channel][i]:.2f})" for i in picks))
        print()
    print(f"{'student':<12}{'distil s':>10}{'(training)':>12}{'calibrate s':>13}{'forecast ms/member-step':>26}")
    for entry in results:
        s = entry["seconds"]
        print(f"{entry['method'] + ' x' + str(entry['calls']):<12}{s.get('distill', float('nan')):>10.0f}"
              f"{s.get('distill_training', float('nan')):>12.0f}{s.get('calibrate', float('nan')):>13.0f}"
              f"{entry['forecast_ms_per_member_step']:>26.1f}")
    print("\ngoals (1 call: CRPS within 3 % of the teacher from 12 h to 5 days, spread/skill in [0.8, 1.2])")
    for entry in results:
        for channel, goal in entry["comparison"]["goals"].items():
            print(f"  {entry['method']} x{entry['calls']} {channel}: {goal}")
    record = {"teacher_nfe_per_step": teacher_nfe, "minutes": args.minutes, "lead_hours": leads,
              "students": [{k: v for k, v in e.items() if k != "metrics"} for e in results]}
    (args.json or root / "bench_students.json").write_text(json.dumps(record, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
