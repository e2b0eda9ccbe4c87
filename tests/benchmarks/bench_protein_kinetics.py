"""Kinetics of the time-lagged protein model: implied timescales and the survival of the rare basin, side by side.

    python tests/benchmarks/bench_protein_kinetics.py --run-dir runs/protein --out runs/kinetics

Uses the training and reference MD of a default ``velocast run protein`` (alanine dipeptide). For each forecast
training variant (``--variants``: condition balance 0 = pairs drawn uniformly, 1 = evenly over TICA clusters, the
default; × ``--condition-noise`` σ, the conditioning augmentation, default 0.3 as in the run; × ``--seeds``,
training seeds; each ``--minutes`` of training on one thread, two variants side by side) it trains a forecast model,
rolls out ``--members`` × ``--steps`` lags from the first reference frame and evaluates them (the two slowest
implied timescales with their 95 % credible intervals, against the reference MD's). It also starts the model from
every MD frame in αL (φ > 0, the rare long-lived basin) and prints the fraction still at φ > 0 after 1, 2, 3, 4
lags next to the MD's own, on the training frames and on the unseen reference frames, and the rollouts' αL and
off-basin ("other") populations next to the reference MD's (the cost side: a model that lengthens t₁ by leaving
the basins has not learnt the kinetics). Prints a table, writes
``OUT/bench_protein_kinetics.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np

LAGS = 4


def velocast(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pipeline", "--threads", "1", *args], check=True,
                   stdout=subprocess.DEVNULL)


def survival(model_dir: Path, store_path: Path, *, lag_frames: int) -> tuple[list[float], list[float], int]:
    """(model, MD) fraction of the trajectories started at every αL frame of ``store_path`` still at φ > 0 after
    1 … LAGS lags (the MD counted on its own frames ``lag_frames`` apart), and the number of starts."""
    import torch

    from pipeline.protein.geometry import phi_psi
    from pipeline.protein.metrics import assign_basins
    from pipeline.protein.modeling.generate import _draw, _SampleStreams
    from pipeline.protein.modeling.model import load_protein_model
    from pipeline.protein.store import open_structure_store

    torch.set_num_threads(1)
    model = load_protein_model(model_dir)
    store = open_structure_store(store_path)
    x = store.frames()
    phi, psi = phi_psi(x, store.topology)
    ends = np.asarray([*store.trajectory_start[1:], len(x)])
    end_of = ends[np.searchsorted(ends, np.arange(len(x)), side="right")]
    starts = np.where((assign_basins(phi[:, 0], psi[:, 0]) == 2) & (np.arange(len(x)) + LAGS * lag_frames < end_of))[0]
    if not len(starts):  # no αL frame with LAGS lags of MD after it
        return [float("nan")] * LAGS, [float("nan")] * LAGS, 0
    md = np.cumprod([[phi[i + k * lag_frames, 0] > 0 for k in range(1, LAGS + 1)] for i in starts], axis=1).mean(0)
    current, alive, found = torch.from_numpy(model.featuriser.encode(x[starts])), np.ones(len(starts), bool), []
    streams = _SampleStreams(0)
    for _ in range(LAGS):
        drawn, _ = _draw(model, len(starts), condition=current, sampler="heun", steps=8, streams=streams)
        angles, _ = phi_psi(model.featuriser.decode(drawn), store.topology)
        alive &= angles[:, 0] > 0
        found.append(float(alive.mean()))
        current = torch.from_numpy(drawn)
    return found, [float(v) for v in md], len(starts)


@dataclass(frozen=True)
class Variant:
    """One forecast training: condition balance, condition noise σ and training seed."""

    balance: float
    noise: float
    seed: int

    @property
    def label(self) -> str:
        return f"balance {self.balance:g}, σ {self.noise:g}, seed {self.seed}"

    @property
    def directory(self) -> str:
        return f"balance_{self.balance:g}" + (f"_noise_{self.noise:g}" if self.noise else "") + \
            (f"_seed_{self.seed}" if self.seed else "")


def run_variant(variant: Variant, args: argparse.Namespace) -> dict:
    out = args.out / variant.directory
    train, reference = args.run_dir / "train.zarr", args.run_dir / "reference.zarr"
    if not (out / "model" / "checkpoints").exists():
        velocast("train", "protein", "--data", str(train), "--task", "forecast", "--lag-ps", str(args.lag_ps),
                 "--condition-balance", str(variant.balance), "--condition-noise", str(variant.noise),
                 "--set", f"train.seed={variant.seed}", "--max-minutes", str(args.minutes), "--steps", "100000",
                 "--out", str(out / "model"), "--no-progress")
    velocast("forecast", "protein", "--model", str(out / "model"), "--start", f"{reference}:0", "--steps",
             str(args.steps), "--members", str(args.members), "--formats", "", "--out", str(out / "forecast"),
             "--no-progress")
    velocast("evaluate", "protein", "--samples", str(out / "forecast" / "trajectories.zarr"), "--reference",
             str(reference), "--training", str(train), "--out", str(out / "report"), "--no-progress")
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    lag_frames = round(args.lag_ps)  # the default run saves a frame every ps
    result = {"label": variant.label, "balance": variant.balance, "condition_noise": variant.noise,
              "seed": variant.seed, "implied_timescales": metrics["implied_timescales"], "rama_js": metrics["rama_js"],
              "basins": metrics["basins"]["samples"],
              "reference_basins": metrics["basins"].get("reference", {})}
    for name, store in (("training", train), ("reference", reference)):
        model, md, n = survival(out / "model", store, lag_frames=lag_frames)
        result[f"alpha_l_survival_{name}"] = {"model": model, "md": md, "starts": n}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/protein"))
    parser.add_argument("--out", type=Path, default=Path("runs/kinetics"))
    parser.add_argument("--variants", default="0,1", help="condition balances to compare, comma-separated")
    parser.add_argument("--condition-noise", default="0.3", help="condition noise σ values, comma-separated (0.3: the "
                                                                "default of the run)")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    parser.add_argument("--minutes", type=float, default=2.0, help="training minutes per variant (the default run's)")
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lag-ps", type=float, default=10.0)
    args = parser.parse_args(argv)
    variants = [Variant(float(b), float(n), int(s)) for b, n, s in product(
        args.variants.split(","), args.condition_noise.split(","), args.seeds.split(","))]
    with ThreadPoolExecutor(max_workers=2) as pool:  # two variants side by side, one core each
        results = list(pool.map(lambda v: run_variant(v, args), variants))

    def its(v: float | None, ci: list | None) -> str:
        return "–" if v is None else f"{v:5.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"

    ref = results[0]["implied_timescales"]
    print(f"\nimplied timescales at lag {ref['lag_ps']:g} ps (ps, 95 % credible interval); αL survival after "
          f"1–{LAGS} lags")
    print(f"{'':<30} {'t1':<24} {'t2':<22} {'αL survival (training frames)':<32} {'(reference frames)':<26}"
          f"{'αL':>7}{'other':>7}")
    for r in results:
        t = r["implied_timescales"]
        st, sr = r["alpha_l_survival_training"], r["alpha_l_survival_reference"]
        print(f"{r['label']:<30} {its(t['samples'][0], t['samples_ci95'][0]):<24} "
              f"{its(t['samples'][1], t['samples_ci95'][1]):<22} {' '.join(f'{v:.2f}' for v in st['model']):<32} "
              f"{' '.join(f'{v:.2f}' for v in sr['model']):<26}"
              f"{r['basins'].get('alpha_l', float('nan')):>7.3f}{r['basins'].get('other', float('nan')):>7.3f}")
    st, sr = results[0]["alpha_l_survival_training"], results[0]["alpha_l_survival_reference"]
    md_basins = results[0]["reference_basins"]
    print(f"{'reference MD':<30} {its(ref['reference'][0], ref['reference_ci95'][0]):<24} "
          f"{its(ref['reference'][1], ref['reference_ci95'][1]):<22} {' '.join(f'{v:.2f}' for v in st['md']):<32} "
          f"{' '.join(f'{v:.2f}' for v in sr['md']):<26}"
          f"{md_basins.get('alpha_l', float('nan')):>7.3f}{md_basins.get('other', float('nan')):>7.3f}")
    print(f"(αL starts: {st['starts']} training frames, {sr['starts']} reference frames)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_protein_kinetics.json"
    path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "variants": results}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
