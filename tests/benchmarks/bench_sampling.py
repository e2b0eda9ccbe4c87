"""Sampler sweep: forecast quality against network calls per forecast step, with distilled students.

    python tests/benchmarks/bench_sampling.py --weather-run RUN [--student RUN2 ...] [--out bench_sampling.json]
    python tests/benchmarks/bench_sampling.py --workdir /tmp/vs          # no run: simulate + train a quick one
    python tests/benchmarks/bench_sampling.py ... --protein-run PRUN --protein-reference MD.zarr

**Weather.** Ensembles of ``--members`` members are rolled out ``--lead-steps`` model steps from
``--init-times`` init times spread over the held-out period after the teacher's training split (the
times its training never saw), for every sampler (euler, heun, midpoint, dpmpp_2s, churn) at 1, 2, 4, …,
64 network calls per forecast step (steps = calls / calls-per-step of the sampler). Score: the
latitude-weighted fair CRPS in normalised units (each channel divided by its climatological std),
averaged over channels, leads and init times (the same score as training's ``val/crps``). Every
configuration uses the same noise seed, and every run samples from its own calibrated noise (size λ and
memory ρ from ``RUN/calibration.json``, see ``velocast calibrate weather``; a student inherits its
teacher's) unless ``--noise-scale`` / ``--noise-memory`` are given. Each ``--student`` run (from ``velocast distill weather``) is
scored at the sampler and steps recorded in its checkpoint. A configuration is Pareto-optimal when no
other has at most as many calls and a lower CRPS.

**Molecules.** With ``--protein-run`` (an ``ensemble`` model) and ``--protein-reference`` (an MD store),
the Ramachandran Jensen–Shannon distance of ``--protein-samples`` conformations against the reference,
per sampler and calls; otherwise the protein sweep is reported as skipped.

**Students at 1, 2 and 4 calls, in the same run** (``--run-dir``, ``--protein-run-dir``: finished
``velocast run weather`` / ``velocast run protein`` directories). Every ``--distill`` method is distilled from
the run's teacher at every ``--distill-calls`` with the same training wall-clock (``--distill-minutes``; the
``distil`` of ``bench_students.py``); the students join the sweep, so the Pareto table holds them next to the
teacher at every sampler and step count. Then the teacher at its best sweep configuration (lowest CRPS with
spread/skill ≥ 0.5; lowest Ramachandran JS for molecules) and every student go through the run's own stages
(weather: calibrate, forecast the run's test init times and members over its 5-day leads, evaluate; molecules:
draw the run's number of conformations, ``velocast evaluate protein``), and the ladder table prints, per
method and calls: the fair CRPS ÷ the teacher's best at each lead (the lower of the run's default sampler and
the sweep's best, per lead and channel), the spread/skill ratio, and the forecast wall-clock per member-step;
for molecules the Ramachandran JS, the basin populations and the milliseconds per structure. The issue's goals
are checked on it (1 call: weather CRPS within 3 % of the teacher's best at every lead from 12 h to 5 days with
spread/skill in [0.8, 1.2]; alanine dipeptide JS within 0.02 of the teacher's best).

    python tests/benchmarks/bench_sampling.py --run-dir runs/weather --protein-run-dir runs/protein \
        --distill crps,reflow --protein-distill reflow,energy --distill-calls 1,2,4 --samplers euler,heun \
        --calls 1,2,4,8,16 --out runs/bench_sampling.json

Prints the tables and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SAMPLER_NAMES = ("euler", "heun", "midpoint", "dpmpp_2s", "churn")


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


# ----------------------------------------------------------------------------------------- weather


def quick_weather_run(workdir: Path, *, train_steps: int) -> Path:
    """Simulate the quick atmosphere (if absent) and train a quick-network fm teacher on it."""
    from pipeline.weather.modeling.train import ValidationConfig, WeatherTrainConfig, train_weather
    from pipeline.weather.run import RUN
    from pipeline.weather.simulate.api import simulate_training_store

    quick = RUN.configure("quick")
    data = workdir / "atmosphere.zarr"
    if not data.exists():
        _, _, _, days = quick.periods()
        simulate_training_store(out=data, days=days, seed=0, spinup_days=quick.spinup_days, progress=False)
    run = workdir / "teacher"
    train = quick.train.model_copy(update={"steps": train_steps, "validate_every": 0, "max_minutes": None,
                                           "checkpoint_every": train_steps, "warmup_steps": 20,
                                           "ema_decay": 0.995, "objective": "fm"})
    train_weather(WeatherTrainConfig(data=str(data), network=quick.network, train=train,
                                     validation=ValidationConfig()), out=run, progress=False)
    return run


class WeatherCases:
    """Held-out init times of a run's training store: physical history and normalised truth."""

    def __init__(self, run: Path, *, data: str | None, init_times: int, lead_steps: int) -> None:
        import pandas as pd

        from pipeline.weather.modeling.data import stack_channels
        from pipeline.weather.modeling.model import load_forecaster
        from pipeline.weather.modeling.train import split_times
        from pipeline.weather.store import open_training_store

        self.teacher, self.teacher_checkpoint = load_forecaster(run)
        meta = self.teacher.metadata
        cfg_path = Path(run) / "train_config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        self.data = data or cfg.get("data") or meta["data"]
        store = open_training_store(self.data)
        times = pd.DatetimeIndex(store["time"].values)
        last_train = split_times(times, train_end=cfg.get("train_end"), fraction=float(cfg.get("validation_fraction", 0.1)))
        step = self.teacher.step
        candidates = [t for t in times if t - step > last_train and t + lead_steps * step <= times[-1]
                      and t - step in times]
        if not candidates:
            raise SystemExit(f"{self.data}: no held-out init time with {lead_steps} steps of truth after {last_train}")
        picks = np.unique(np.linspace(0, len(candidates) - 1, min(init_times, len(candidates))).astype(int))
        self.init_times = pd.DatetimeIndex([candidates[i] for i in picks])
        channels = self.teacher.channels
        self.history = np.stack([stack_channels(store.sel(time=(self.init_times - step).values), channels),
                                 stack_channels(store.sel(time=self.init_times.values), channels)], axis=1)
        norm = self.teacher.normalisation
        truth = [norm.encode(stack_channels(store.sel(time=(self.init_times + (k + 1) * step).values), channels))
                 for k in range(lead_steps)]
        self.truth_z = np.stack(truth, axis=1)  # (N, L, C, H, W)
        self.latitude = self.teacher.latitude
        self.lead_steps = lead_steps

    def crps(self, forecaster, *, sampler: str, steps: int, members: int, seed: int,  # type: ignore[no-untyped-def]
             noise: tuple[object, float] = (1.0, 0.0)) -> tuple[float, int, float, float]:
        """(mean fair CRPS in normalised units, network calls per forecast step, seconds, spread/skill ratio);
        ``noise`` = (λ, ρ) of the sampler noise."""
        import xarray as xr

        from pipeline.evaluation.ensemble import crps, spread_skill_ratio
        from pipeline.weather.modeling.rollout import rollout

        start = time.perf_counter()
        result = rollout(forecaster, history=self.history, init_times=self.init_times, n_steps=self.lead_steps,
                         members=members, sampler=sampler, sampler_steps=steps, seed=seed, batch_size=256,
                         noise_scale=noise[0], noise_memory=noise[1])
        seconds = time.perf_counter() - start
        norm = forecaster.normalisation
        z = np.stack([[norm.encode(result.states[n, k]) for k in range(self.lead_steps)]
                      for n in range(len(self.init_times))])  # (N, L, M, C, H, W)
        dims = ("init_time", "lead_time", "member", "channel", "latitude", "longitude")
        fc = xr.DataArray(z, dims=dims, coords={"latitude": self.latitude})
        obs = xr.DataArray(self.truth_z, dims=dims[:2] + dims[3:], coords={"latitude": self.latitude})
        ssr = float(spread_skill_ratio(fc, obs, preserve_dims=("channel",)).mean())
        return float(crps(fc, obs, preserve_dims=()).mean()), result.nfe_per_step, seconds, ssr


def run_name(path: Path) -> str:
    """A run's name: its directory, or the directory above a ``model`` directory."""
    path = Path(path)
    return path.parent.name if path.name == "model" else path.name


def sweep_configs(calls: list[int], samplers: list[str]) -> list[tuple[str, int]]:
    """(sampler, steps) with steps = calls / calls-per-step, for every whole number of steps."""
    from models.samplers import CALLS_PER_STEP

    out = []
    for name in [n for n in samplers if n and n != "none"]:
        per = CALLS_PER_STEP[name]
        out += [(name, c // per) for c in calls if c % per == 0 and c // per >= 1]
    return out


def pareto(points: list[dict], key: str) -> None:
    """Mark ``pareto=True`` on points no other point beats with ≤ calls and a lower ``key``."""
    for p in points:
        p["pareto"] = not any(q is not p and q["calls"] <= p["calls"] and q[key] < p[key] for q in points)


def print_table(title: str, points: list[dict], key: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    extra = ["spread/skill"] if any("ssr" in p for p in points) else []
    for col in ("model", "sampler", "steps", "calls/step", key, *extra, "seconds", "Pareto"):
        table.add_column(col, justify="right" if col not in ("model", "sampler") else "left")
    for p in sorted(points, key=lambda p: (p["calls"], p[key])):
        cells = [f"{p.get('ssr', float('nan')):.3f}"] if extra else []
        table.add_row(p["model"], p["sampler"], str(p["steps"]), str(p["calls"]), f"{p[key]:.5f}", *cells,
                      f"{p['seconds']:.1f}", "*" if p["pareto"] else "")
    Console(width=140).print(table)


def run_noise(args: argparse.Namespace, run: Path, checkpoint_dir: Path) -> tuple[object, float]:
    """(λ, ρ) a run samples with: ``--noise-scale`` / ``--noise-memory``, else its calibration.json."""
    from pipeline.weather.modeling.calibrate import recorded_noise
    from pipeline.weather.domain import parse_noise_scale

    scale, memory = recorded_noise(run, checkpoint_dir)
    if args.noise_scale is not None:
        scale = parse_noise_scale(args.noise_scale)
    return scale, memory if args.noise_memory is None else args.noise_memory


def weather_sweep(args: argparse.Namespace) -> dict:
    from pipeline.weather.modeling.model import load_forecaster

    run = args.weather_run
    if run is None:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        run = workdir / "teacher"
        if not (run / "checkpoints").is_dir():
            print(f"no --weather-run: training a quick teacher in {run}", flush=True)
            run = quick_weather_run(workdir, train_steps=args.train_steps)
    cases = WeatherCases(Path(run), data=args.weather_data, init_times=args.init_times, lead_steps=args.lead_steps)
    print(f"weather: teacher {run}, {len(cases.init_times)} init times {cases.init_times[0]} .. "
          f"{cases.init_times[-1]}, {args.members} members, {args.lead_steps} steps", flush=True)
    noise = run_noise(args, Path(run), cases.teacher_checkpoint)
    print(f"  teacher noise: λ {noise[0]}, ρ {noise[1]}", flush=True)
    points: list[dict] = []
    for name, steps in sweep_configs(parse_ints(args.calls), args.samplers.split(",")):
        score, nfe, seconds, ssr = cases.crps(cases.teacher, sampler=name, steps=steps, members=args.members,
                                              seed=args.seed, noise=noise)
        points.append({"model": "teacher", "sampler": name, "steps": steps, "calls": nfe, "crps": score,
                       "ssr": ssr, "seconds": seconds, "noise_scale": noise[0], "noise_memory": noise[1]})
        print(f"  teacher {name:9s} x{steps:<3d} calls {nfe:3d}  crps {score:.5f}  ssr {ssr:.3f}  {seconds:.1f}s",
              flush=True)
    for student_run in args.student:
        student, student_checkpoint = load_forecaster(student_run)
        student_noise = run_noise(args, Path(student_run), student_checkpoint)
        name = student.metadata.get("sampler", "euler")
        own = int(student.metadata.get("sampler_steps", 4))
        for steps in sorted({own, *([1, 2, 4] if args.student_all_steps else [])}):
            score, nfe, seconds, ssr = cases.crps(student, sampler=name, steps=steps, members=args.members,
                                                  seed=args.seed, noise=student_noise)
            method = (student.metadata.get("distillation") or {}).get("method", "reflow")
            label = f"{method} student(K={own})"
            points.append({"model": label, "run": str(student_run), "sampler": name, "steps": steps, "calls": nfe,
                           "crps": score, "ssr": ssr, "seconds": seconds, "noise_scale": student_noise[0],
                           "noise_memory": student_noise[1]})
            print(f"  {label} {name} x{steps} calls {nfe}  crps {score:.5f}  ssr {ssr:.3f}  {seconds:.1f}s",
                  flush=True)
    record = {"run": str(run), "data": cases.data, "init_times": [str(t) for t in cases.init_times],
              "members": args.members, "lead_steps": args.lead_steps, "points": points}
    return report_weather(record)


def report_weather(record: dict) -> dict:
    """Pareto flags, the table, and the distillation summary of a weather sweep record (in place)."""
    points = record["points"]
    pareto(points, "crps")
    teacher = [p for p in points if p["model"] == "teacher"]
    if not teacher:
        print_table("weather: fair CRPS vs network calls per step (no teacher points)", points, "crps")
        return record
    best = min(teacher, key=lambda p: p["crps"])
    ensembles = [p for p in teacher if p.get("ssr", 1.0) >= 0.5]
    best_ensemble = min(ensembles, key=lambda p: p["crps"]) if ensembles else None
    summary = {"teacher_best": best, "teacher_best_ensemble_ssr_ge_0.5": best_ensemble, "students": []}
    for p in points:
        if p["model"] == "teacher":
            continue
        matched = [q["calls"] for q in teacher if q["crps"] <= p["crps"]]
        summary["students"].append({
            "model": p["model"], "steps": p["steps"], "calls": p["calls"], "crps": p["crps"],
            "vs_teacher_best": p["crps"] / best["crps"] - 1.0,
            "within_3pct": p["calls"] <= 4 and p["crps"] <= 1.03 * best["crps"],
            "teacher_calls_for_same_crps": min(matched) if matched else None,
        })
    for name in dict.fromkeys(q["sampler"] for q in teacher):
        first = [q["calls"] for q in teacher if q["sampler"] == name and q["crps"] <= 1.03 * best["crps"]]
        summary.setdefault("teacher_calls_within_3pct", {})[name] = min(first) if first else None
    print_table("weather: fair CRPS (normalised, mean over channels/leads/inits) vs network calls per step",
                points, "crps")
    print(f"teacher best: {best['sampler']} x{best['steps']} ({best['calls']} calls) crps {best['crps']:.5f}")
    print(f"teacher calls to come within 3% of its best, per sampler: {summary['teacher_calls_within_3pct']}")
    if best_ensemble is not None and best_ensemble is not best:
        print(f"teacher best with spread/skill >= 0.5: {best_ensemble['sampler']} x{best_ensemble['steps']} "
              f"({best_ensemble['calls']} calls) crps {best_ensemble['crps']:.5f}")
    for s in summary["students"]:
        print(f"{s['model']} x{s['steps']}: {s['calls']} calls, crps {s['crps']:.5f} "
              f"({100 * s['vs_teacher_best']:+.2f}% vs teacher best); the teacher needs "
              f"{s['teacher_calls_for_same_crps']} calls for a CRPS as low; goal (<=4 calls, within 3%): "
              f"{'met' if s['within_3pct'] else 'not met'}")
    record["summary"] = summary
    return record


# ----------------------------------------------------------------------------------------- students


def distil_students(args: argparse.Namespace, *, domain: str) -> list[dict]:
    """Distil (or reuse) every method × calls student of a finished run; returns bench_students' entries,
    each with its ``model`` directory."""
    from bench_students import protein_student, student

    run = args.run_dir if domain == "weather" else args.protein_run_dir
    methods = [m.strip() for m in (args.distill if domain == "weather" else args.protein_distill).split(",")
               if m.strip()]
    minutes = args.distill_minutes if domain == "weather" else args.protein_distill_minutes
    members = args.distill_members if domain == "weather" else args.protein_distill_members
    make = student if domain == "weather" else protein_student
    entries = []
    for method in methods:
        for calls in parse_ints(args.distill_calls):
            print(f"{domain}: student {method} x{calls} ({minutes:g} min of training)", flush=True)
            out = run / "students" / f"{method}-{calls}"
            entries.append({**make(run, out, method=method, calls=calls, minutes=minutes, members=members,
                                   refresh=args.refresh), "model": out / "model"})
    return entries


def weather_ladder(args: argparse.Namespace, sweep: dict, students: list[dict]) -> dict:
    """The teacher at its run default and at its best sweep configuration, and every student, through the
    run's own forecast and evaluation; per lead: CRPS ÷ the teacher's best, spread/skill, ms per member-step."""
    from bench_students import HEADLINE, compare, score_weather_model

    run = args.run_dir
    default = {"label": "teacher (run)", "metrics": json.loads((run / "metrics.json").read_text())}
    default["calls"] = default["metrics"].get("nfe_per_step")
    teachers = [default]
    best = sweep["summary"]["teacher_best_ensemble_ssr_ge_0.5"] or sweep["summary"]["teacher_best"]
    run_config = json.loads((run / "run_config.json").read_text())
    if (best["sampler"], best["steps"]) != (run_config["sampler"], run_config["sampler_steps"]):
        entry = score_weather_model(run, run / "model", run / "students" / f"teacher-{best['sampler']}-{best['steps']}",
                                    sampler=best["sampler"], sampler_steps=best["steps"])
        teachers.append({"label": f"teacher {best['sampler']} x{best['steps']}", "calls": best["calls"], **entry})
    leads = default["metrics"]["lead_hours"]
    picks = [i for i, h in enumerate(leads) if h in (12, 24, 48, 72, 96, 120)]
    crps = {c: [min(t["metrics"]["scores"]["velocast"]["crps"][c][i] for t in teachers) for i in range(len(leads))]
            for c in HEADLINE}
    rows = [{"label": t["label"], "calls": t["calls"], "metrics": t["metrics"],
             "forecast_ms_per_member_step": t.get("forecast_ms_per_member_step")} for t in teachers]
    rows += [{"label": f"{e['method']} x{e['calls']}", "calls": e["calls"], "method": e["method"],
              "metrics": e["metrics"], "seconds": e["seconds"],
              "forecast_ms_per_member_step": e["forecast_ms_per_member_step"]} for e in students]
    for row in rows:
        row |= compare(crps, leads, row["metrics"])
    print("\nweather ladder: fair CRPS ÷ the teacher's best at each lead (spread/skill), the run's test cases")
    for channel in HEADLINE:
        print(f"\n{channel}")
        print(f"{'model':<22}{'calls':>6}" + "".join(f"{leads[i]:>13g}h" for i in picks) + f"{'ms/member-step':>16}")
        for row in rows:
            ms = row["forecast_ms_per_member_step"]
            print(f"{row['label']:<22}{row['calls'] or float('nan'):>6g}"
                  + "".join(f"{row['ratio'][channel][i]:>7.3f} ({row['ssr'][channel][i]:.2f})" for i in picks)
                  + (f"{ms:>16.1f}" if ms is not None else f"{'':>16}"))
    print("\ngoal (1 call: CRPS within 3 % of the teacher's best from 12 h to 5 days, spread/skill in [0.8, 1.2]):")
    for row in rows[len(teachers):]:
        met = all(g["crps_within_3pct_12h_to_5d"] and g["ssr_in_0.8_1.2_12h_to_5d"] for g in row["goals"].values())
        worst = max(g["worst_ratio_12h_to_5d"] for g in row["goals"].values())
        print(f"  {row['label']:<12} worst ratio {worst:.3f}  {'met' if met else 'not met'}")
    return {"lead_hours": leads, "teacher_best_per_lead": crps,
            "rows": [{k: v for k, v in row.items() if k != "metrics"} for row in rows]}


def protein_ladder(args: argparse.Namespace, sweep: dict, students: list[dict]) -> dict:
    """The protein teacher at the run's sampler and at its best sweep configuration, and every student:
    Ramachandran JS, basin populations and ms per structure, on the run's own evaluation."""
    from bench_students import score_protein_model

    from models.samplers import CALLS_PER_STEP

    run = args.protein_run_dir
    run_config = json.loads((run / "run_config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    calls = CALLS_PER_STEP[run_config["sampler"]] * run_config["sampler_steps"]
    rows = [{"label": "teacher (run)", "calls": calls, "rama_js": metrics["rama_js"],
             "basins": metrics.get("basins", {}).get("samples", {}), "sample_ms_per_structure": None}]
    own = [p for p in sweep.get("points", []) if p["model"] == "model"]
    if own:
        best = min(own, key=lambda p: p["rama_js"])
        if (best["sampler"], best["steps"]) != (run_config["sampler"], run_config["sampler_steps"]):
            entry = score_protein_model(run, run / "ensemble_model",
                                        run / "students" / f"teacher-{best['sampler']}-{best['steps']}",
                                        sampler=best["sampler"], steps=best["steps"])
            rows.append({"label": f"teacher {best['sampler']} x{best['steps']}", "calls": best["calls"], **entry})
    teachers = len(rows)
    rows += [{"label": f"{e['method']} x{e['calls']}", **e} for e in students]
    best_js = min(r["rama_js"] for r in rows[:teachers])
    reference = metrics.get("basins", {}).get("reference", {})
    names = list(reference) or list(rows[0]["basins"])
    print("\nprotein ladder: the run's samples against its reference MD")
    print(f"{'model':<22}{'calls':>6}{'rama_js':>9}" + "".join(f"{n:>10}" for n in names) + f"{'ms/structure':>14}")
    print(f"{'reference MD':<22}{'':>6}{'':>9}" + "".join(f"{reference.get(n, float('nan')):>10.3f}" for n in names))
    for row in rows:
        ms = row.get("sample_ms_per_structure")
        print(f"{row['label']:<22}{row['calls'] or float('nan'):>6g}{row['rama_js']:>9.4f}"
              + "".join(f"{row['basins'].get(n, float('nan')):>10.3f}" for n in names)
              + (f"{ms:>14.3f}" if ms is not None else ""))
        row["js_minus_teacher_best"] = row["rama_js"] - best_js
    print(f"\ngoal (1 call: Ramachandran JS within 0.02 of the teacher's best, {best_js:.4f}):")
    for row in rows[teachers:]:
        print(f"  {row['label']:<12} {row['js_minus_teacher_best']:+.4f}  "
              f"{'met' if row['js_minus_teacher_best'] <= 0.02 else 'not met'}")
    return {"teacher_best_rama_js": best_js, "reference_basins": reference, "rows": rows}


# ----------------------------------------------------------------------------------------- protein


def protein_sweep(args: argparse.Namespace) -> dict:
    if args.protein_run is None or args.protein_reference is None:
        print("protein: skipped (no --protein-run ensemble model and --protein-reference MD store given)")
        return {"skipped": "no --protein-run / --protein-reference"}
    import mdtraj

    from pipeline.protein.metrics import angles_of, even_histogram, js_distance, rama_histogram
    from pipeline.protein.modeling.generate import load_protein_model, sample_conformations
    from pipeline.protein.store import open_structure_store

    models = [("model", args.protein_run)] + [(f"student {run_name(s)}", s) for s in args.protein_student]
    ref_hist = even_histogram(angles_of(open_structure_store(args.protein_reference)), args.protein_samples)
    points: list[dict] = []
    for label, path in models:
        model = load_protein_model(path)
        if model.task != "ensemble":
            print(f"protein: {path} is a {model.task} model; the sweep needs an ensemble model")
            continue
        configs = sweep_configs(parse_ints(args.calls), args.samplers.split(",")) if label == "model" else \
            [(model.metadata.get("sampler", "euler"), int(model.metadata.get("sampler_steps", 4)))]
        for name, steps in configs:
            start = time.perf_counter()
            gen = sample_conformations(model, n=args.protein_samples, sampler=name, steps=steps, seed=args.seed)
            seconds = time.perf_counter() - start
            traj = mdtraj.Trajectory(gen.coordinates, model.topology)
            _, phi = mdtraj.compute_phi(traj)
            _, psi = mdtraj.compute_psi(traj)
            js = js_distance(rama_histogram(phi[:, :1], psi[:, :1]), ref_hist)
            points.append({"model": label, "sampler": name, "steps": steps, "calls": gen.nfe, "rama_js": js,
                           "seconds": seconds})
            print(f"  {label} {name:9s} x{steps:<3d} calls {gen.nfe:3d}  rama_js {js:.4f}", flush=True)
    pareto(points, "rama_js")
    print_table("alanine dipeptide: Ramachandran JS distance vs network calls", points, "rama_js")
    return {"run": str(args.protein_run), "samples": args.protein_samples, "points": points}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weather-run", type=Path, default=None, help="trained weather run (the teacher)")
    parser.add_argument("--weather-data", default=None, help="store (default: the one the run was trained on)")
    parser.add_argument("--workdir", default="runs/bench_sampling", help="where a quick teacher is made if needed")
    parser.add_argument("--train-steps", type=int, default=800, help="steps of the quick teacher, if one is made")
    parser.add_argument("--student", type=Path, action="append", default=[], help="distilled weather run(s)")
    parser.add_argument("--student-all-steps", action="store_true", help="also score students at 1, 2, 4 steps")
    parser.add_argument("--init-times", type=int, default=8)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--lead-steps", type=int, default=4)
    parser.add_argument("--calls", default="1,2,4,8,16,32,64", help="network calls per forecast step")
    parser.add_argument("--samplers", default=",".join(SAMPLER_NAMES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-scale", default=None,
                        help="sampler noise size λ for every weather run (default: each run's calibration.json)")
    parser.add_argument("--noise-memory", type=float, default=None,
                        help="sampler noise memory ρ for every weather run (default: each run's calibration.json)")
    parser.add_argument("--protein-run", type=Path, default=None, help="protein ensemble model run")
    parser.add_argument("--protein-student", type=Path, action="append", default=[])
    parser.add_argument("--protein-reference", type=Path, default=None, help="reference MD structure store")
    parser.add_argument("--protein-samples", type=int, default=5000)
    parser.add_argument("--skip-weather", action="store_true")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="a finished `velocast run weather`: its model is the teacher (--weather-run)")
    parser.add_argument("--protein-run-dir", type=Path, default=None,
                        help="a finished `velocast run protein`: its ensemble model and reference MD")
    parser.add_argument("--distill", default="", help="weather students to distil, e.g. crps,reflow (needs --run-dir)")
    parser.add_argument("--protein-distill", default="", help="protein students, e.g. reflow,energy")
    parser.add_argument("--distill-calls", default="1,2,4", help="network calls per step of every student")
    parser.add_argument("--distill-minutes", type=float, default=6.0, help="training wall-clock of a weather student")
    parser.add_argument("--protein-distill-minutes", type=float, default=3.0)
    parser.add_argument("--distill-members", type=int, default=2, help="crps/energy members per weather window")
    parser.add_argument("--protein-distill-members", type=int, default=4)
    parser.add_argument("--refresh", action="store_true", help="distil students again even if present")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a busy box)")
    parser.add_argument("--out", type=Path, default=Path("bench_sampling.json"))
    parser.add_argument("--from-json", type=Path, nargs="+", default=None,
                        help="merge the weather points of earlier runs (e.g. one per sampler) and print the report")
    args = parser.parse_args(argv)
    if args.from_json:
        records = [json.loads(path.read_text())["weather"] for path in args.from_json]
        merged = {k: v for k, v in records[0].items() if k not in ("points", "summary")}
        merged["points"] = [p for r in records for p in r["points"]]
        merged["sources"] = [str(p) for p in args.from_json]
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "weather": report_weather(merged)}, indent=1))
        print(f"wrote {args.out}")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    record: dict = {"command": " ".join(sys.argv), "torch_threads": torch.get_num_threads()}
    weather_students = protein_students = []
    if args.run_dir is not None and not args.skip_weather:
        args.weather_run = args.weather_run or args.run_dir / "model"
        weather_students = distil_students(args, domain="weather") if args.distill else []
        args.student += [e["model"] for e in weather_students]
    if args.protein_run_dir is not None:
        args.protein_run = args.protein_run or args.protein_run_dir / "ensemble_model"
        args.protein_reference = args.protein_reference or args.protein_run_dir / "reference.zarr"
        protein_students = distil_students(args, domain="protein") if args.protein_distill else []
        args.protein_student += [e["model"] for e in protein_students]
    record["weather"] = {"skipped": "--skip-weather"} if args.skip_weather else weather_sweep(args)
    record["protein"] = protein_sweep(args)
    if args.run_dir is not None and not args.skip_weather:
        record["weather_ladder"] = weather_ladder(args, record["weather"], weather_students)
    if args.protein_run_dir is not None:
        record["protein_ladder"] = protein_ladder(args, record["protein"], protein_students)
    args.out.write_text(json.dumps(record, indent=1, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
