"""Weather benchmark: CRPS / RMSE / SSR per lead for every system, the skill goals, and throughput.

    python tests/benchmarks/bench_weather.py --run-dir runs/weather          # reuse or make a default run
    python tests/benchmarks/bench_weather.py --run-dir /tmp/wq --quick        # the quick path
    python tests/benchmarks/bench_weather.py --run-dir runs/weather --json bench_weather.json
    python tests/benchmarks/bench_weather.py --run-dir runs/weather --ceiling runs/weather/perfect_model_unobserved.zarr
    python tests/benchmarks/bench_weather.py --run-dir runs/weather --flops --speedups all --threads 1

If the run directory has no ``metrics.json`` the whole ``velocast run weather`` pipeline is run first.
Skill goals checked (issue 4): velocast CRPS below persistence, climatology and deterministic_noise at
every lead from 12 h on geopotential_500 and temperature_850; spread/skill in [0.8, 1.2] at leads ≥ 24 h;
velocast CRPS ÷ perfect-model CRPS at 1, 3 and 5 days. With ``--ceiling`` (a perfect-model store made with
``velocast simulate atmosphere --perturbation unobserved``, the honest ceiling: the stored channels exact at
t = 0) that store is scored against the run's truth too and velocast's CRPS ratio to it is printed at every lead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

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


def ceiling_ratios(run_dir: Path, metrics: dict, ceiling: Path) -> dict:
    """Fair CRPS of the ceiling ensemble per headline channel and lead (lead 0 included: it starts near zero)
    and velocast's CRPS ÷ the ceiling's at every lead velocast has."""
    import xarray as xr

    from pipeline.weather.metrics import score_system

    store = xr.open_zarr(ceiling)
    names = sorted({channel.rsplit("_", 1)[0] for channel in HEADLINE})
    scores, _ = score_system(store, xr.open_zarr(run_dir / "atmosphere.zarr"), variables=names)
    hours = [round(h) for h in store["lead_time"].values / np.timedelta64(1, "h")]
    out: dict = {"store": str(ceiling), "lead_hours": hours, "crps": {}, "ratio": {},
                 "observed_footprint_max": float(store["observed_footprint"].max())
                 if "observed_footprint" in store.coords else None}
    for channel in HEADLINE:
        if channel not in scores["crps"]:
            continue
        theirs = dict(zip(hours, scores["crps"][channel]))
        out["crps"][channel] = scores["crps"][channel]
        ours = metrics["scores"]["velocast"]["crps"][channel]
        out["ratio"][channel] = {h: o / theirs[h] for h, o in zip(metrics["lead_hours"], ours) if theirs.get(h)}
    return out


def print_ceiling(result: dict) -> None:
    print(f"\nHonest ceiling: {result['store']} (observed footprint ≤ {result['observed_footprint_max']})")
    for channel, crps in result["crps"].items():
        hours = result["lead_hours"]
        show = [i for i, h in enumerate(hours) if h in (0, 6, 12, 24, 48, 72, 96, 120)]
        print(f"{'lead':<26}" + "".join(f"{hours[i]:>8}h" for i in show))
        print(f"{'ceiling CRPS ' + channel:<26}" + "".join(f"{crps[i]:>9.4g}" for i in show))
        ratio = result["ratio"][channel]
        print(f"{'velocast ÷ ceiling':<26}" + "".join(
            f"{ratio[hours[i]]:>9.3g}" if hours[i] in ratio else f"{'–':>9}" for i in show))


def training_inputs(run_dir: Path, *, threads: int):  # type: ignore[no-untyped-def]
    """(the run's network in training mode, its batch size, a random batch x, times t and condition) on
    ``threads`` torch threads: what one training step of the run consumes."""
    import torch

    from pipeline.weather.modeling.model import load_forecaster

    torch.set_num_threads(threads)
    forecaster, _ = load_forecaster(run_dir / "model")
    batch = json.loads((run_dir / "model" / "train_config.json").read_text())["train"]["batch_size"]
    net = forecaster.net.train()
    channels, height, width = len(forecaster.channels), len(forecaster.latitude), len(forecaster.longitude)
    generator = torch.Generator().manual_seed(0)
    condition = {"fields": torch.randn(batch, net.conditioner.condition_channels, height, width, generator=generator),
                 "globals": torch.randn(batch, net.conditioner.global_features, generator=generator)}
    x, t = torch.randn(batch, channels, height, width, generator=generator), torch.rand(batch, generator=generator)
    return net, batch, x, t, condition


def training_flops(run_dir: Path, *, threads: int = 1, repeats: int = 5) -> dict:
    """Achieved training GFLOP/s beside a plain matmul on the same threads, measured now.

    FLOPs of one training step (forward + backward of the run's network on a batch of the run's size; the
    optimizer's few FLOPs per weight left out) are counted by ``torch.utils.flop_counter``; the rate is that
    count times the step rate the run logged (``train_model_steps_per_s``) and times the step rate of forward
    + backward alone timed here; the matmul is 1024 × 1024 float32 (2·n³ FLOPs each)."""
    import time

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    net, batch, x, t, condition = training_inputs(run_dir, threads=threads)
    generator = torch.Generator().manual_seed(1)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        net(x, t, condition).pow(2).mean().backward()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    fwd_bwd_per_s = repeats / (time.perf_counter() - start)
    a, b = torch.randn(1024, 1024, generator=generator), torch.randn(1024, 1024, generator=generator)
    a @ b
    start = time.perf_counter()
    for _ in range(20):
        a @ b
    matmul = 20 * 2 * 1024**3 / (time.perf_counter() - start)
    return {"threads": threads, "batch": batch, "gflop_per_step": flops / 1e9,
            "fwd_bwd_gflop_per_s": flops * fwd_bwd_per_s / 1e9, "matmul_gflop_per_s": matmul / 1e9}


SPEEDUPS = ("eager", "channels_last", "bf16", "compile", "compile+bf16")


def training_speedups(run_dir: Path, *, threads: int = 1, steps: int = 4, rounds: int = 3,
                      variants: tuple[str, ...] = SPEEDUPS) -> dict:
    """Training steps/s of the run's network under each execution variant, measured now and interleaved.

    One step is the real one: forward + backward of the run's network at the run's batch size, AdamW, zeroed
    gradients. Variants: ``eager`` (float32, the default), ``channels_last`` (network and inputs in NHWC),
    ``bf16`` (``torch.autocast("cpu", torch.bfloat16)``, what ``train.amp: bf16`` does), ``compile``
    (``torch.compile``, inductor) and ``compile+bf16``. Each variant has its own copy of the network and is
    warmed up (compiled) first; then ``rounds`` rounds time ``steps`` steps of every variant in turn, so a load
    that changes during the run falls on all of them alike; the median per variant is reported with its ratio
    to eager and the seconds its compile took."""
    import copy
    import statistics
    import time
    from contextlib import nullcontext

    import torch

    base, batch, x, t, condition0 = training_inputs(run_dir, threads=threads)
    fields, globals_ = condition0["fields"], condition0["globals"]

    def make(variant: str):  # type: ignore[no-untyped-def]
        net = copy.deepcopy(base)
        inputs, condition = x, {"fields": fields, "globals": globals_}
        if variant == "channels_last":
            net = net.to(memory_format=torch.channels_last)
            inputs = x.contiguous(memory_format=torch.channels_last)
            condition = {"fields": fields.contiguous(memory_format=torch.channels_last), "globals": globals_}
        model = torch.compile(net) if variant.startswith("compile") else net
        amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if variant.endswith("bf16") else nullcontext
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-5, foreach=True)

        def step() -> None:
            with amp():
                loss = model(inputs, t, condition).float().pow(2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    runners, warm_s = {}, {}
    for variant in variants:
        start = time.perf_counter()
        runners[variant] = make(variant)
        for _ in range(2):
            runners[variant]()
        warm_s[variant] = time.perf_counter() - start
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for variant, step in runners.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            rates[variant].append(steps / (time.perf_counter() - start))
    median = {v: statistics.median(r) for v, r in rates.items()}
    return {"threads": threads, "batch": batch, "steps_per_round": steps, "rounds": rounds,
            "variants": {v: {"steps_per_s": median[v], "vs_eager": median[v] / median.get("eager", median[v]),
                             "rounds_steps_per_s": rates[v], "warmup_s": warm_s[v]} for v in variants}}


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
    parser.add_argument("--flops", action="store_true",
                        help="count the training step's FLOPs and measure GFLOP/s beside a plain matmul")
    parser.add_argument("--speedups", default=None, metavar="VARIANTS",
                        help="time training steps under execution variants, comma-separated, or 'all': "
                             + ", ".join(SPEEDUPS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads for --flops and --speedups")
    parser.add_argument("--ceiling", type=Path, default=None,
                        help="an unobserved-perturbation perfect-model store to report velocast's CRPS ratio to")
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
    if args.flops:
        flops = training_flops(args.run_dir, threads=args.threads)
        if rates.get("train_model_steps_per_s"):
            flops["run_gflop_per_s"] = flops["gflop_per_step"] * rates["train_model_steps_per_s"]
        result["flops"] = flops
        print("\nTraining FLOPs (torch.utils.flop_counter)")
        for name, value in flops.items():
            print(f"  {name:<32} {value:.4g}" if isinstance(value, float) else f"  {name:<32} {value}")
        if flops.get("run_gflop_per_s"):
            share = flops["run_gflop_per_s"] / flops["matmul_gflop_per_s"]
            print(f"  the run trained at {share:.0%} of the matmul's rate")
    if args.speedups:
        chosen = SPEEDUPS if args.speedups == "all" else tuple(v.strip() for v in args.speedups.split(","))
        unknown = sorted(set(chosen) - set(SPEEDUPS))
        if unknown:
            parser.error(f"unknown --speedups variant(s) {', '.join(unknown)}; choose from {', '.join(SPEEDUPS)}")
        result["speedups"] = training_speedups(args.run_dir, threads=args.threads, variants=chosen)
        print(f"\nTraining steps/s by execution variant ({args.threads} thread(s), interleaved rounds)")
        for name, entry in result["speedups"]["variants"].items():
            print(f"  {name:<16} {entry['steps_per_s']:8.3f} steps/s  {entry['vs_eager']:5.2f}x eager"
                  f"  (warm-up {entry['warmup_s']:.0f} s)")
    if args.ceiling is not None:
        result["ceiling"] = ceiling_ratios(args.run_dir, metrics, args.ceiling)
        print_ceiling(result["ceiling"])
    (args.json or args.run_dir / "bench.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
