"""Objective ablation: the same network and training budget under every objective, over seeds.

    python tests/benchmarks/bench_objectives.py --task toy [--seeds 0,1,2] [--out bench_objectives_toy.json]
    python tests/benchmarks/bench_objectives.py --task weather --weather-data STORE [--steps 150] ...
    python tests/benchmarks/bench_objectives.py --task protein --protein-data TRAIN.zarr --protein-reference REF.zarr

Objectives (presets of ``models.objectives``): ``eps-linear_beta``, ``eps-cosine``, ``eps-sigmoid`` (noise
prediction under three schedules), ``x0-cosine`` (data prediction), ``v-cosine`` (v-prediction), ``edm``
(EDM preconditioning, log-normal σ) and ``fm`` (flow matching: linear path, velocity target).

**Toy**: the unconditional 2-D mixture of 8 Gaussians, ``MLPDenoiser(hidden=64, depth=2)``, ``--steps``
AdamW steps of batch 256, lr 2e-3, EMA 0.99 — identical for every objective and seed. Quality: sliced
Wasserstein distance to 4000 fresh data points and the L1 error of the 8 mixture weights, of 4000
samples with Euler (1-64 calls) and Heun (2-64 calls).
**Weather**: the quick-scale weather network (the ``--quick`` run's network) trained ``--steps``
steps of batch 8 on the given store's training split; quality: the fair CRPS (normalised units,
latitude-weighted, mean over channels) of ``--members``-member ensembles one model step (6 h) ahead
from ``--init-times`` held-out init times.

Sampling grid: uniform in t for ``fm``; for the variance-preserving objectives EDM's ρ = 7 noise levels
with σ_max = 20 (``time_grid(kind="karras")``) — each objective gets its customary grid; the JSON also
holds the uniform-t grid for all of them.

**Loss stability**: the training loss is logged every step; a *spike* is a step after warm-up + 20 whose
loss exceeds 5 × the median of the previous 50 steps' losses; a run *fails* if any loss is NaN/inf. The
table counts runs with at least one spike and runs with NaN, and the coefficient of variation of the loss
over the last 20 % of steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METRICS = {"toy": ["sw", "weights_l1"], "weather": ["crps"], "protein": ["rama_js", "alpha_r_error"]}
OBJECTIVES = ("eps-linear_beta", "eps-cosine", "eps-sigmoid", "x0-cosine", "v-cosine", "edm", "fm")
SPIKE_FACTOR = 5.0
SPIKE_WINDOW = 50


def loss_stability(losses: list[float], warmup: int) -> dict:
    """Spikes (loss > 5 × median of the previous 50, after warm-up + 20), NaN, CV over the last 20 %."""
    arr = np.asarray(losses, dtype=np.float64)
    nan = bool((~np.isfinite(arr)).any())
    spikes = 0
    for i in range(max(warmup + 20, SPIKE_WINDOW), len(arr)):
        window = arr[i - SPIKE_WINDOW:i]
        window = window[np.isfinite(window)]
        if window.size and np.isfinite(arr[i]) and arr[i] > SPIKE_FACTOR * np.median(window):
            spikes += 1
    tail = arr[int(0.8 * len(arr)):]
    tail = tail[np.isfinite(tail)]
    cv = float(tail.std() / tail.mean()) if tail.size and tail.mean() != 0 else float("nan")
    return {"spikes": spikes, "nan": nan, "final_loss": float(tail.mean()) if tail.size else float("nan"),
            "tail_cv": cv}


def eval_grid(objective, steps: int, kind: str):  # type: ignore[no-untyped-def]
    """``customary``: the core's ``auto`` grid (uniform for fm, karras from σ 20 otherwise); or uniform in t."""
    from models.samplers import time_grid

    return time_grid(objective.path, steps, kind="uniform" if kind == "uniform" else "auto")


def train_logged(net, data, config, objective):  # type: ignore[no-untyped-def]
    """Train with the core loop, logging the loss every step; returns (ema_net, losses, seconds)."""
    from models.training import train

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(net=net, data=data, config=config, run_dir=tmp, objective=objective)
        seconds = time.perf_counter() - start
        losses = [json.loads(line)["loss"] for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()
                  if '"loss"' in line]
    return result.ema_net, losses, seconds


# ---------------------------------------------------------------------------------------------- toy


def toy_run(name: str, seed: int, args: argparse.Namespace) -> dict:
    import torch

    from models.networks import MLPDenoiser
    from models.objectives import make_objective
    from models.samplers import Denoiser, sample
    from models.toy import EightGaussiansSource, eight_gaussians, mixture_weights, sliced_wasserstein
    from models.training import TrainConfig

    objective = make_objective(name)
    torch.manual_seed(seed)
    net = MLPDenoiser(2, hidden=64, depth=2)
    config = TrainConfig(objective=name, steps=args.steps, batch_size=256, lr=2e-3, warmup_steps=50, ema_decay=0.99,
                         log_every=1, checkpoint_every=0, seed=seed)
    ema_net, losses, seconds = train_logged(net, EightGaussiansSource(batch_size=256, seed=seed), config, objective)
    gen = torch.Generator().manual_seed(10_000 + seed)
    ref, _ = eight_gaussians(4000, generator=gen)
    noise = torch.randn(4000, 2, generator=gen)
    true_w = mixture_weights(ref)
    quality: dict[str, dict[str, dict[str, float]]] = {}
    with torch.no_grad():
        for kind in ("customary", "uniform"):
            for sampler, per in (("euler", 1), ("heun", 2)):
                for calls in (1, 2, 4, 8, 16, 32, 64):
                    if calls % per:
                        continue
                    steps = calls // per
                    out = sample(Denoiser(ema_net, objective), noise, sampler=sampler, steps=steps,
                                 grid=eval_grid(objective, steps, kind))
                    x = out.samples
                    ok = bool(torch.isfinite(x).all())
                    sw = sliced_wasserstein(x, ref, generator=torch.Generator().manual_seed(0)) if ok else float("nan")
                    mw = float((mixture_weights(x) - true_w).abs().sum()) if ok else float("nan")
                    quality.setdefault(kind, {}).setdefault(sampler, {})[str(calls)] = {"sw": sw, "weights_l1": mw}
    best = quality["customary"]["heun"]["64"]
    return {"objective": name, "seed": seed, "train_seconds": seconds, **loss_stability(losses, 50),
            "sw": best["sw"], "weights_l1": best["weights_l1"], "quality": quality}


# ------------------------------------------------------------------------------------------ weather


class WeatherTask:
    """The quick-scale weather problem: training windows and held-out one-step cases of a store."""

    def __init__(self, args: argparse.Namespace) -> None:
        import pandas as pd
        import xarray as xr  # noqa: F401

        from pipeline.weather.modeling.data import WeatherWindows, dynamic_channels
        from pipeline.weather.modeling.train import split_times
        from pipeline.weather.store import open_training_store

        store = open_training_store(args.weather_data)
        self.channels = dynamic_channels(store, None)
        times = pd.DatetimeIndex(store["time"].values)
        last = split_times(times, train_end=None, fraction=0.1)
        self.step = pd.Timedelta(hours=6)
        self.windows = WeatherWindows.from_dataset(store.sel(time=slice(None, last)), self.channels, step=self.step)
        held = WeatherWindows.from_dataset(store.sel(time=slice(last + pd.Timedelta(1, "ns"), None)), self.channels,
                                           step=self.step, normalisation=self.windows.normalisation)
        picks = held.starts[np.linspace(0, len(held.starts) - 1, min(args.init_times, len(held.starts))).astype(int)]
        self.target, self.condition = held.example(picks)  # normalised residuals, conditions
        self.current = held.z[picks]
        self.scale = held.normalisation.residual_scale.reshape(1, -1, 1, 1)
        self.latitude = held.latitude
        self.members = args.members

    def crps(self, net, objective, *, sampler: str, steps: int, kind: str, seed: int) -> float:  # type: ignore[no-untyped-def]
        import torch
        import xarray as xr

        from models.guidance import map_condition
        from models.samplers import Denoiser, sample
        from pipeline.evaluation.ensemble import crps

        n, m = self.target.shape[0], self.members
        cond = map_condition(lambda v: v.repeat_interleave(m, dim=0), self.condition)
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn((n * m, *self.target.shape[1:]), generator=gen)
        with torch.no_grad():
            out = sample(Denoiser(net, objective, condition=cond), noise, sampler=sampler, steps=steps,
                         grid=eval_grid(objective, steps, kind), generator=gen).samples.numpy()
        if not np.isfinite(out).all():
            return float("nan")
        pred = self.current[:, None] + self.scale[None] * out.reshape(n, m, *out.shape[1:])
        truth = self.current + self.scale * self.target.numpy()
        dims = ("init_time", "member", "channel", "latitude", "longitude")
        fc = xr.DataArray(pred, dims=dims, coords={"latitude": self.latitude})
        obs = xr.DataArray(truth, dims=dims[:1] + dims[2:], coords={"latitude": self.latitude})
        return float(crps(fc, obs, preserve_dims=()).mean())


def weather_run(name: str, seed: int, task: WeatherTask, args: argparse.Namespace) -> dict:
    import torch

    from models.objectives import make_objective
    from models.training import TrainConfig
    from pipeline.weather.modeling.model import build_network
    from pipeline.weather.run import RUN

    objective = make_objective(name)
    torch.manual_seed(seed)
    net = build_network(RUN.configure("quick").network, channels=task.windows.channels,
                        condition_channels=task.windows.condition_channels, latitude=task.windows.latitude,
                        longitude=task.windows.longitude)
    config = TrainConfig(objective=name, steps=args.steps, batch_size=8, lr=1e-3, warmup_steps=20, ema_decay=0.99,
                         log_every=1, checkpoint_every=0, seed=seed)
    ema_net, losses, seconds = train_logged(net, task.windows.source(batch_size=8, seed=seed), config, objective)
    quality: dict = {}
    for kind in ("customary", "uniform") if args.uniform_too else ("customary",):
        for sampler, per in (("euler", 1), ("heun", 2)):
            for calls in parse_ints(args.weather_calls):
                if calls % per:
                    continue
                score = task.crps(ema_net, objective, sampler=sampler, steps=calls // per, kind=kind, seed=seed)
                quality.setdefault(kind, {}).setdefault(sampler, {})[str(calls)] = {"crps": score}
    heun = quality["customary"]["heun"]
    best_calls = max(heun, key=int)
    return {"objective": name, "seed": seed, "train_seconds": seconds, **loss_stability(losses, 20),
            "crps": heun[best_calls]["crps"], "crps_calls": int(best_calls), "quality": quality}


# ------------------------------------------------------------------------------------------ protein


class ProteinTask:
    """Alanine dipeptide: training features, and the reference's Ramachandran histogram at ``n`` samples."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        from pipeline.protein.metrics import angles_of, basin_populations, even_histogram, js_distance
        from pipeline.protein.modeling.data import fit_featuriser
        from pipeline.protein.store import open_structure_store

        store = open_structure_store(args.protein_data)
        frames = store.frames()
        self.topology = store.topology
        self.featuriser = fit_featuriser("internal", frames, store.topology, bonds=args.protein_bonds)
        self.z = torch.from_numpy(self.featuriser.encode(frames))
        self.samples = args.protein_samples
        reference = angles_of(open_structure_store(args.protein_reference))
        self.ref_hist = even_histogram(reference, self.samples)
        self.ref_alpha_r = basin_populations(reference.phi, reference.psi)["alpha_r"]
        training = angles_of(store)
        self.training_js = js_distance(even_histogram(training, self.samples), self.ref_hist)
        self.training_alpha_r = basin_populations(training.phi, training.psi)["alpha_r"]

    def score(self, net, objective, *, sampler: str, steps: int, kind: str, seed: int) -> dict:  # type: ignore[no-untyped-def]
        import torch

        from models.samplers import Denoiser, sample
        from pipeline.protein.metrics import basin_populations, js_distance, rama_histogram
        from pipeline.protein.geometry import phi_psi

        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(self.samples, self.z.shape[1], generator=gen)
        with torch.no_grad():
            z = sample(Denoiser(net, objective), noise, sampler=sampler, steps=steps,
                       grid=eval_grid(objective, steps, kind), generator=gen).samples.numpy()
        if not np.isfinite(z).all():
            return {"rama_js": float("nan"), "alpha_r_error": float("nan")}
        phi, psi = phi_psi(self.featuriser.decode(z), self.topology)
        return {"rama_js": js_distance(rama_histogram(phi, psi), self.ref_hist),
                "alpha_r_error": abs(basin_populations(phi, psi)["alpha_r"] - self.ref_alpha_r)}


def protein_run(name: str, seed: int, task: ProteinTask, args: argparse.Namespace) -> dict:
    import torch

    from models.networks import MLPDenoiser
    from models.objectives import make_objective
    from models.training import TensorSource, TrainConfig
    from pipeline.protein.modeling.model import ProteinNetworkConfig

    objective = make_objective(name)
    torch.manual_seed(seed)
    network = ProteinNetworkConfig()
    net = MLPDenoiser(task.z.shape[1], hidden=network.hidden, depth=network.depth, time_dim=network.time_dim)
    config = TrainConfig(objective=name, steps=args.steps, batch_size=512, lr=1e-3, warmup_steps=200, ema_decay=0.999,
                         log_every=1, checkpoint_every=0, seed=seed)
    ema_net, losses, seconds = train_logged(net, TensorSource(task.z, batch_size=512, seed=seed), config, objective)
    quality: dict = {}
    for kind in ("customary", "uniform") if args.uniform_too else ("customary",):
        for sampler, per in (("euler", 1), ("heun", 2)):
            for calls in parse_ints(args.protein_calls):
                if calls % per:
                    continue
                score = task.score(ema_net, objective, sampler=sampler, steps=calls // per, kind=kind, seed=seed)
                quality.setdefault(kind, {}).setdefault(sampler, {})[str(calls)] = score
    heun = quality["customary"]["heun"]
    best_calls = max(heun, key=int)
    return {"objective": name, "seed": seed, "train_seconds": seconds, **loss_stability(losses, 200),
            "rama_js": heun[best_calls]["rama_js"], "alpha_r_error": heun[best_calls]["alpha_r_error"],
            "rama_js_calls": int(best_calls), "quality": quality}


# ------------------------------------------------------------------------------------------- report


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def mean_std(values: list[float]) -> str:
    arr = np.asarray(values, dtype=float)
    if not np.isfinite(arr).all():
        return f"NaN in {int((~np.isfinite(arr)).sum())}/{arr.size}"
    return f"{arr.mean():.4f} ± {arr.std():.4f}"


def summarise(runs: list[dict], metrics: list[str], quality_key: str) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r["objective"] for r in runs):
        group = [r for r in runs if r["objective"] == name]
        row = {"objective": name, "seeds": len(group),
               "runs_with_spike": sum(r["spikes"] > 0 for r in group), "runs_with_nan": sum(r["nan"] for r in group),
               "tail_cv": float(np.mean([r["tail_cv"] for r in group]))}
        for metric in metrics:
            row[metric] = mean_std([r[metric] for r in group])
        for sampler in ("euler", "heun"):
            calls = sorted(group[0]["quality"]["customary"][sampler], key=int)
            row[f"{sampler}_by_calls"] = {c: float(np.mean([r["quality"]["customary"][sampler][c][quality_key]
                                                            for r in group])) for c in calls}
        rows.append(row)
    return rows


def print_summary(title: str, rows: list[dict], metrics: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    table = Table(title=title)
    for col in ["objective", *metrics, "runs w/ spike", "runs w/ NaN", "loss CV (last 20%)"]:
        table.add_column(col)
    for row in rows:
        table.add_row(row["objective"], *[row[m] for m in metrics], f"{row['runs_with_spike']}/{row['seeds']}",
                      f"{row['runs_with_nan']}/{row['seeds']}", f"{row['tail_cv']:.3f}")
    console.print(table)
    for sampler in ("euler", "heun"):
        table = Table(title=f"{title}: quality vs network calls ({sampler}, customary grid, mean over seeds)")
        table.add_column("objective")
        calls = list(rows[0][f"{sampler}_by_calls"])
        for c in calls:
            table.add_column(c, justify="right")
        for row in rows:
            table.add_row(row["objective"], *[f"{row[f'{sampler}_by_calls'][c]:.4f}" for c in calls])
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("toy", "weather", "protein"), default="toy")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=None, help="training steps (toy 1500, weather 150, protein 3000)")
    parser.add_argument("--weather-data", default=None, help="training store (e.g. a quick run's atmosphere.zarr)")
    parser.add_argument("--init-times", type=int, default=8)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--weather-calls", default="1,2,4,8,16,32")
    parser.add_argument("--uniform-too", action="store_true", help="weather: also score the uniform-t grid")
    parser.add_argument("--protein-data", default=None, help="training MD store (e.g. a protein run's train.zarr)")
    parser.add_argument("--protein-reference", default=None,
                        help="reference MD store (e.g. a protein run's reference.zarr)")
    parser.add_argument("--protein-samples", type=int, default=10000)
    parser.add_argument("--protein-bonds", choices=("learned", "fixed"), default="learned",
                        help="internal coordinates with learned bond lengths (as measured in docs/results/sampling.md) or fixed ones")
    parser.add_argument("--protein-calls", default="1,2,4,8,16,32,64")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--from-json", type=Path, nargs="+", default=None,
                        help="print the combined tables of earlier runs' JSON files (e.g. objectives split in parts)")
    args = parser.parse_args(argv)
    if args.from_json:
        runs = [run for path in args.from_json for run in json.loads(path.read_text())["runs"]]
        metrics = METRICS[args.task]
        rows = summarise(runs, metrics, metrics[0])
        print_summary(f"{args.task} (combined from {len(args.from_json)} files)", rows, metrics)
        if args.out:
            args.out.write_text(json.dumps({"sources": [str(p) for p in args.from_json], "runs": runs,
                                            "summary": rows}, indent=1))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    names = args.objectives.split(",")
    seeds = parse_ints(args.seeds)
    out = args.out or Path(f"bench_objectives_{args.task}.json")
    record: dict = {"command": " ".join(sys.argv), "task": args.task, "torch_threads": torch.get_num_threads()}
    runs: list[dict] = []
    if args.task == "weather":
        if args.weather_data is None:
            parser.error("--task weather needs --weather-data STORE")
        weather = WeatherTask(args)
        args.steps = args.steps or 150
        one_run = lambda name, seed: weather_run(name, seed, weather, args)  # noqa: E731
        title = "weather (quick scale, 6 h CRPS)"
    elif args.task == "protein":
        if args.protein_data is None or args.protein_reference is None:
            parser.error("--task protein needs --protein-data TRAIN.zarr and --protein-reference REF.zarr "
                         "(a `velocast run protein` output holds both)")
        protein = ProteinTask(args)
        args.steps = args.steps or 3000
        one_run = lambda name, seed: protein_run(name, seed, protein, args)  # noqa: E731
        title = f"alanine dipeptide (Ramachandran JS, {args.protein_samples} samples)"
        print(f"floor: the training data's own Ramachandran JS at {args.protein_samples} frames "
              f"{protein.training_js:.4f}; αR population training {protein.training_alpha_r:.3f}, "
              f"reference {protein.ref_alpha_r:.3f}")
        record |= {"training_rama_js": protein.training_js, "training_alpha_r": protein.training_alpha_r,
                   "reference_alpha_r": protein.ref_alpha_r}
    else:
        args.steps = args.steps or 1500
        one_run = lambda name, seed: toy_run(name, seed, args)  # noqa: E731
        title = "8-Gaussian toy"
    metrics = METRICS[args.task]
    print(title, flush=True)
    started = time.perf_counter()
    for name in names:
        for seed in seeds:
            run = one_run(name, seed)
            runs.append(run)
            print(f"{name:16s} seed {seed}: {metrics[0]} {run[metrics[0]]:.4f}  spikes {run['spikes']}  "
                  f"nan {run['nan']}  tail CV {run['tail_cv']:.3f}  ({run['train_seconds']:.0f}s)", flush=True)
            record["runs"] = runs
            out.write_text(json.dumps(record, indent=1))
    rows = summarise(runs, metrics, metrics[0])
    record["summary"] = rows
    record["seconds"] = time.perf_counter() - started
    print_summary(f"{title}: {args.steps} steps, seeds {seeds}", rows, metrics)
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
