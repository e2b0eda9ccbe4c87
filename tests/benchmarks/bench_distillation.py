"""Few-step distillation on the conditional 2-D toy: why reflow (models.distillation).

    python tests/benchmarks/bench_distillation.py [--out bench_distillation.json]

Problem: the 8-Gaussian mixture conditioned on ``label mod 2`` (one-hot), so each condition is a 4-mode
mixture. Teacher: ``MLPDenoiser(hidden=128, depth=3)`` trained with flow matching for ``--teacher-steps``.
Scores: sliced Wasserstein (SW) to 4000 fresh data points and the L1 error of the 8 mixture weights, of
4000 samples under the same conditions and noise.

Compared at the same student budget (``--student-steps`` AdamW steps of batch 256, lr 1e-3, initialised
from the teacher):

* the teacher itself with Euler / Heun at 1-64 calls;
* **reflow** students for K = 1, 2, 4 Euler steps, with training times ``uniform``, ``grid`` (K-step Euler
  grid) and ``mixed`` (half each), on 8192 couplings from the teacher's Heun x32 ODE;
* **consistency distillation** (Song et al. 2023) in the flow-matching parametrisation
  ``f(x, t) = x + (1 - t)·v(x, t)`` (so ``f(x, 1) = x``): loss ``|f_θ(x_tn, tn) - f_θ⁻(x̂_tn+1, tn+1)|²`` with
  ``x_tn`` on the straight path of real data, ``x̂_tn+1`` one teacher Heun step, N = 16 grid intervals,
  EMA target θ⁻ (0.95); sampled with the multistep consistency sampler (K calls: predict x1, re-noise to
  the next grid time with fresh noise).

Shortcut models were not measured: they need a network with a step-size input and training from scratch
(not a distillation of an existing model), which our checkpoints and CPU budget do not allow.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from models.distillation import ReflowConfig, reflow_distill, teacher_couplings
from models.networks import MLPDenoiser
from models.objectives import make_objective
from models.randomness import Stream, Streams
from models.samplers import Denoiser, sample
from models.toy import eight_gaussians, mixture_weights, sliced_wasserstein
from models.training import Batch, TrainConfig, train


class HalfLabelSource:
    def __init__(self, batch_size: int, seed: int = 0) -> None:
        self.batch_size, self.seed = batch_size, seed

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> Batch:
        gen = Streams(self.seed).generator(Stream.DATA, step)
        x, labels = eight_gaussians(self.batch_size, generator=gen)
        return Batch(x1=x, condition=torch.nn.functional.one_hot(labels % 2, 2).float())


def consistency_distill(teacher, *, steps: int, n: int = 16, seed: int = 0):  # type: ignore[no-untyped-def]
    """Consistency distillation in the FM parametrisation (see the module docstring)."""
    student = copy.deepcopy(teacher).train()
    target = copy.deepcopy(teacher).eval()
    obj = make_objective("fm")
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    src = HalfLabelSource(256, seed=11)
    ema = copy.deepcopy(student)

    def f(net, x, t, c):  # type: ignore[no-untyped-def]
        return x + (1 - t)[:, None] * net(x, t, c)

    streams = Streams(seed)
    for step in range(steps):
        batch = src.batch(step)
        x1, c = batch.x1, batch.condition
        z = torch.randn(x1.shape, generator=streams.generator(Stream.NOISE, step))
        i = torch.randint(0, n, (x1.shape[0],), generator=streams.generator(Stream.TIME, step))
        t0, t1 = i.float() / n, (i.float() + 1) / n
        xt = (1 - t0)[:, None] * z + t0[:, None] * x1
        with torch.no_grad():
            h = (t1 - t0)[:, None]
            v0 = obj.predict(teacher, xt, t0, c).velocity
            v1 = obj.predict(teacher, xt + h * v0, t1, c).velocity
            x_next = xt + 0.5 * h * (v0 + v1)
            goal = f(target, x_next, t1, c)
        loss = ((f(student, xt, t0, c) - goal) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pt, ps in zip(target.parameters(), student.parameters()):
                pt.lerp_(ps, 0.05)
            for pe, ps in zip(ema.parameters(), student.parameters()):
                pe.lerp_(ps, 0.01)
    return ema.eval()


@torch.no_grad()
def consistency_sample(net, noise, cond, k: int, generator):  # type: ignore[no-untyped-def]
    x, t = noise, torch.zeros(noise.shape[0])
    for j in range(k):
        x1 = x + (1 - t)[:, None] * net(x, t, cond)
        t_next = (j + 1) / k
        if j == k - 1:
            return x1
        z = torch.randn(x.shape, generator=generator)
        t = torch.full((noise.shape[0],), t_next)
        x = (1 - t_next) * z + t_next * x1
    return x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher-steps", type=int, default=1500)
    parser.add_argument("--student-steps", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("bench_distillation.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    torch.manual_seed(0)
    net = MLPDenoiser(2, cond_dim=2, hidden=128, depth=3)
    cfg = TrainConfig(objective="fm", steps=args.teacher_steps, batch_size=256, lr=2e-3, warmup_steps=50,
                      ema_decay=0.995, log_every=10**9, checkpoint_every=0)
    teacher = train(net=net, data=HalfLabelSource(256), config=cfg).ema_net
    obj = make_objective("fm")
    gen = torch.Generator().manual_seed(99)
    ref, labels = eight_gaussians(4000, generator=gen)
    cond = torch.nn.functional.one_hot(labels % 2, 2).float()
    noise = torch.randn(4000, 2, generator=gen)
    true_w = mixture_weights(ref)

    def score(x: torch.Tensor) -> dict:
        return {"sw": sliced_wasserstein(x, ref, generator=torch.Generator().manual_seed(0)),
                "weights_l1": float((mixture_weights(x) - true_w).abs().sum())}

    rows: list[dict] = []
    with torch.no_grad():
        for sampler, per in (("euler", 1), ("heun", 2)):
            for calls in (1, 2, 4, 8, 16, 32, 64):
                if calls % per == 0:
                    x = sample(Denoiser(teacher, obj, condition=cond), noise, sampler=sampler, steps=calls // per).samples
                    rows.append({"method": f"teacher {sampler}", "calls": calls, **score(x)})
    base = ReflowConfig(pairs=8192, pair_batch_size=1024, teacher_steps=32, steps=args.student_steps, batch_size=256,
                        lr=1e-3, warmup_steps=20)
    t0 = time.perf_counter()
    couplings = teacher_couplings(teacher, obj, source=HalfLabelSource(1024, seed=5), config=base)
    pair_seconds = time.perf_counter() - t0
    for mode in ("uniform", "grid", "mixed"):
        for k in (1, 2, 4):
            t0 = time.perf_counter()
            res = reflow_distill(teacher=teacher, teacher_objective=obj, couplings=couplings,
                                 config=base.model_copy(update={"student_steps": k, "time_sampling": mode}))
            seconds = time.perf_counter() - t0
            with torch.no_grad():
                x = sample(Denoiser(res.student, obj, condition=cond), noise, sampler="euler", steps=k).samples
            rows.append({"method": f"reflow ({mode})", "calls": k, "train_seconds": seconds, **score(x)})
    t0 = time.perf_counter()
    cd = consistency_distill(teacher, steps=args.student_steps)
    cd_seconds = time.perf_counter() - t0
    for k in (1, 2, 4):
        x = consistency_sample(cd, noise, cond, k, torch.Generator().manual_seed(1))
        rows.append({"method": "consistency distillation", "calls": k, "train_seconds": cd_seconds, **score(x)})
    print(f"{'method':28s} {'calls':>5s} {'SW':>8s} {'weights L1':>11s}")
    for r in rows:
        print(f"{r['method']:28s} {r['calls']:5d} {r['sw']:8.4f} {r['weights_l1']:11.4f}")
    print(f"teacher couplings: {len(couplings)} pairs at {couplings.nfe} calls in {pair_seconds:.1f}s; "
          f"total {time.perf_counter() - started:.0f}s")
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows, "pair_seconds": pair_seconds},
                                   indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
