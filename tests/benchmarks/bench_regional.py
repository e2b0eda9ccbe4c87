"""Regional hourly benchmark: a limited-area surface reanalysis, forecast 1–24 h, against persistence and an
hour-of-day climatology.

    python tests/benchmarks/bench_regional.py --out runs/regional                     # the development case
    python tests/benchmarks/bench_regional.py --out runs/era5 --recipe my-era5.yaml   # your own file
    python tests/benchmarks/bench_regional.py --out runs/regional --train-minutes 12 --json bench.json

It runs the documented command-line path (``docs/weather-regional.md``), each step skipped when its output
exists (``--refresh`` redoes them): ``velocast ingest weather RECIPE`` → ``velocast train weather`` (1-h step,
clock forcings, the recipe's static fields) → ``velocast calibrate weather`` on validation init times →
``velocast forecast weather`` (10 members, 1–24 h) → ``velocast evaluate weather``. Periods come from the
store's own times: the test init times are a dozen, every 12 h, in the last week (each with 24 h of truth
after it), the four days before them are the validation period, and everything earlier trains.

The default recipe is the development case ``pipeline/weather/recipes/regional-hourly-dev.yaml``: the
embedded atmosphere with diurnal heating over an idealised land mask, hourly, cut to a box across 0°.
Goals (issue 18): fair CRPS below persistence and below the hour-of-day climatology at every lead 1–24 h,
spread/skill in [0.8, 1.2] from 6 h on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DEV_RECIPE = Path(__file__).resolve().parents[2] / "pipeline" / "weather" / "recipes" / "regional-hourly-dev.yaml"


def velocast(*args: str) -> None:
    """Run one velocast command in this process (exactly the CLI a user types); fail loudly."""
    from pipeline.cli import main

    print("$ velocast " + " ".join(args), flush=True)
    try:
        main(list(args))
    except SystemExit as done:
        if done.code not in (0, None):
            raise SystemExit(f"velocast {args[0]} {args[1]} failed with exit status {done.code}") from None


def periods(times: pd.DatetimeIndex, *, inits: int = 12, spacing_h: int = 12, lead_h: int = 24,
            validation_days: float = 5.0) -> dict:
    """Test init times (a dozen, every 12 h at 00/12 UTC, the last leaving ``lead_h`` of truth), the
    validation period before them, the calibration init times inside it (at the test's hours of day, every
    ``spacing_h``: an hourly model's error growth depends on the time of day a forecast starts, so spread is
    calibrated for the hours it will be used at), and the last training time."""
    last = (times[-1] - pd.Timedelta(hours=lead_h)).floor(f"{spacing_h}h")
    test = pd.date_range(end=last, periods=inits, freq=f"{spacing_h}h")
    valid_end = test[0] - pd.Timedelta(hours=1)
    train_end = test[0] - pd.Timedelta(days=validation_days) - pd.Timedelta(hours=1)
    first_cal = (train_end + pd.Timedelta(hours=1)).ceil(f"{spacing_h}h")
    last_cal = (valid_end - pd.Timedelta(hours=lead_h)).floor(f"{spacing_h}h")
    calibration = pd.date_range(first_cal, last_cal, freq=f"{spacing_h}h")
    return {"test": test, "calibration": calibration, "train_end": train_end, "valid_end": valid_end}


def iso(times) -> str:  # type: ignore[no-untyped-def]
    return ",".join(t.strftime("%Y-%m-%dT%H:%M") for t in pd.DatetimeIndex(times))


def run(args: argparse.Namespace) -> dict:
    out: Path = args.out
    if args.refresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    analysis, model, forecast, report = (out / "analysis.zarr", out / "model", out / "forecast.icechunk",
                                         out / "evaluation")
    seconds: dict[str, float] = {}

    def step(name: str, done: bool, *command: str) -> None:
        if done:
            print(f"(reusing {name})")
            return
        start = time.perf_counter()
        velocast(*command)
        seconds[name] = round(time.perf_counter() - start, 1)

    step("ingest", analysis.exists(), "ingest", "weather", str(args.recipe), "--out", str(analysis), "--no-progress")
    import xarray as xr

    times = pd.DatetimeIndex(xr.open_zarr(analysis)["time"].values)
    spacing = pd.Timedelta(np.median(np.diff(times.values)))
    if spacing != pd.Timedelta(hours=1):
        raise SystemExit(f"this benchmark is for hourly data; the store's spacing is {spacing}")
    p = periods(times)
    step("train", (model / "checkpoints").exists(), "train", "weather", "--data", str(analysis), "--out", str(model),
         "--max-minutes", str(args.train_minutes), "--no-progress", "--set", "step_hours=1",
         "--set", f"train_end={p['train_end'].isoformat()}", "--set", f"validation_end={p['valid_end'].isoformat()}",
         "--set", "network.base_channels=32", "--set", "network.blocks_per_level=1", *args.train_set)
    sampler = ("--sampler", "heun", "--steps", str(args.sampler_steps))
    step("calibrate", (model / "calibration.json").exists(), "calibrate", "weather", "--model", str(model),
         "--data", str(analysis), "--init-times", iso(p["calibration"]), "--lead-hours", "24", "--min-lead-hours",
         "6", "--members", "8", "--one-scale", *sampler, "--no-progress")
    step("forecast", forecast.exists(), "forecast", "weather", "--model", str(model), "--data", str(analysis),
         "--init-times", iso(p["test"]), "--members", "10", "--lead", "24h", *sampler, "--out", str(forecast),
         "--no-progress")
    step("evaluate", (report / "metrics.json").exists(), "evaluate", "weather", "--forecast", str(forecast),
         "--truth", str(analysis), "--out", str(report), "--no-progress")
    metrics = json.loads((report / "metrics.json").read_text())
    return {"metrics": metrics, "periods": {k: [str(t) for t in np.atleast_1d(v)] for k, v in p.items()},
            "seconds": seconds, "grid": dict(xr.open_zarr(analysis).sizes),
            "domain": xr.open_zarr(analysis).attrs.get("domain")}


def table(metrics: dict) -> tuple[list[str], dict]:
    """Rows of the lead table for every variable, and the goal checks."""
    leads = metrics["lead_hours"]
    scores = metrics["scores"]
    lines, checks = [], {}
    for variable in metrics["variables"]:
        ours = scores["velocast"]["crps"][variable]
        persistence = scores["persistence"]["crps"][variable]
        climatology = scores["climatology"]["crps"][variable]
        ssr = scores["velocast"]["ssr"][variable]
        lines.append(f"\n{variable}: fair CRPS by lead (lower is better), spread/skill of velocast")
        lines.append(f"{'lead':>5} {'velocast':>10} {'persistence':>12} {'climatology':>12} {'spread/skill':>13}")
        for i, hours in enumerate(leads):
            lines.append(f"{hours:>4}h {ours[i]:>10.4f} {persistence[i]:>12.4f} {climatology[i]:>12.4f} {ssr[i]:>13.2f}")
        checks[variable] = {
            "beats_persistence_every_lead": all(o < b for o, b in zip(ours, persistence)),
            "beats_climatology_every_lead": all(o < b for o, b in zip(ours, climatology)),
            "ssr_in_0.8_1.2_from_6h": all(0.8 <= s <= 1.2 for h, s in zip(leads, ssr) if h >= 6),
            "mean_crps_ratio_to_persistence": float(np.mean(np.divide(ours, persistence))),
            "mean_crps_ratio_to_climatology": float(np.mean(np.divide(ours, climatology))),
        }
    return lines, checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/regional"))
    parser.add_argument("--recipe", type=Path, default=DEV_RECIPE, help="ingest recipe of an hourly regional source")
    parser.add_argument("--train-minutes", type=float, default=12.0, help="training wall-clock budget")
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra `--set` for `velocast train weather` (repeatable), e.g. network.base_channels=32")
    parser.add_argument("--sampler-steps", type=int, default=2, help="Heun steps per 1-h forecast step (2 calls each)")
    parser.add_argument("--refresh", action="store_true", help="redo every step")
    parser.add_argument("--json", type=Path, default=None, help="results file (default: OUT/bench_regional.json)")
    args = parser.parse_args(argv)
    args.train_set = [item for pair in args.train_set for item in ("--set", pair)]
    result = run(args)
    lines, checks = table(result["metrics"])
    print(f"\ngrid {result['grid']}, domain {result['domain']}")
    print(f"test init times {result['periods']['test'][0]} … {result['periods']['test'][-1]} "
          f"({len(result['periods']['test'])}), {result['metrics']['members'].get('velocast')} members")
    print("\n".join(lines))
    print("\nGoals")
    for variable, items in checks.items():
        for name, value in items.items():
            print(f"  {variable:<20} {name:<34} {value}")
    print("\nStep wall-clock (s):", result["seconds"])
    result["checks"] = checks
    (args.json or args.out / "bench_regional.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
