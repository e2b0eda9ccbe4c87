"""Benchmark of the generative core on the toy problem (8-Gaussian mixture, MLP denoiser).

    python tests/benchmarks/bench_core.py [--device cpu|cuda] [--out FILE.json] [--threads N]

Measures training steps/s (the full loop step: batch, loss, backward, clip, AdamW, EMA) and sampling
throughput (samples/s) for every sampler at a few step counts. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.networks import MLPDenoiser
from models.objectives import make_objective
from models.samplers import CALLS_PER_STEP, SAMPLERS, Denoiser, sample
from models.toy import EightGaussiansSource
from models.training import TrainConfig, train


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_training(device: str, *, steps: int, batch: int, hidden: int) -> dict:
    torch.manual_seed(0)
    net = MLPDenoiser(2, hidden=hidden, depth=3)
    cfg = TrainConfig(
        objective="fm",
        steps=steps,
        batch_size=batch,
        lr=1e-3,
        warmup_steps=10,
        log_every=10**9,
        checkpoint_every=0,
        device=device,
        amp="auto",
    )
    warm = cfg.model_copy(update={"steps": 20})
    train(net=net, data=EightGaussiansSource(batch_size=batch), config=warm)
    sync(device)
    start = time.perf_counter()
    train(net=net, data=EightGaussiansSource(batch_size=batch), config=cfg)
    sync(device)
    elapsed = time.perf_counter() - start
    return {
        "steps": steps,
        "batch": batch,
        "hidden": hidden,
        "seconds": elapsed,
        "steps_per_s": steps / elapsed,
        "samples_per_s": steps * batch / elapsed,
    }


def bench_sampling(device: str, *, n: int, hidden: int, step_counts: list[int]) -> list[dict]:
    torch.manual_seed(0)
    net = MLPDenoiser(2, hidden=hidden, depth=3).to(device).eval()
    obj = make_objective("fm")
    rows = []
    for name in SAMPLERS:
        for steps in step_counts:
            noise = torch.randn(n, 2, device=device, generator=torch.Generator(device=device).manual_seed(0))
            gen = torch.Generator(device=device).manual_seed(1)
            with torch.no_grad():
                sample(Denoiser(net, obj), noise[:64], sampler=name, steps=2, generator=gen)  # warm-up
                sync(device)
                start = time.perf_counter()
                res = sample(Denoiser(net, obj), noise, sampler=name, steps=steps, generator=gen)
                sync(device)
            elapsed = time.perf_counter() - start
            assert res.nfe == CALLS_PER_STEP[name] * steps
            rows.append(
                {
                    "sampler": name,
                    "steps": steps,
                    "nfe": res.nfe,
                    "n": n,
                    "seconds": elapsed,
                    "samples_per_s": n / elapsed,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="Device to benchmark.")
    parser.add_argument("--out", type=Path, default=None, help="Write the results as JSON here.")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)."
    )
    parser.add_argument("--train-steps", type=int, default=300, help="Timed training steps.")
    parser.add_argument("--batch", type=int, default=256, help="Training batch size.")
    parser.add_argument("--hidden", type=int, default=128, help="MLP width (depth 3).")
    parser.add_argument("--n", type=int, default=10000, help="Samples per sampling measurement.")
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 16, 64], help="Sampler step counts.")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda:0" if args.device == "cuda" else "cpu"
    training = bench_training(device, steps=args.train_steps, batch=args.batch, hidden=args.hidden)
    sampling = bench_sampling(device, n=args.n, hidden=args.hidden, step_counts=args.steps)
    meta = {
        "device": torch.cuda.get_device_name(0)
        if args.device == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "amp": "bf16 autocast" if args.device == "cuda" else "off",
    }
    print(
        f"device {meta['device']} ({args.device}), torch {meta['torch']}, threads {meta['threads']}, "
        f"load avg {meta['load_average_1min']:.1f}"
    )
    print(
        f"training (MLP width {args.hidden}, depth 3, batch {args.batch}, fm): "
        f"{training['steps_per_s']:.1f} steps/s, {training['samples_per_s']:.0f} samples/s"
    )
    print(f"\n{'sampler':<10} {'steps':>5} {'NFE':>5} {'samples/s':>12}")
    for row in sampling:
        print(f"{row['sampler']:<10} {row['steps']:>5} {row['nfe']:>5} {row['samples_per_s']:>12.0f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "training": training, "sampling": sampling}, indent=1))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
