"""Few-step students of a flow-matching teacher, for conditional models: reflow and CRPS fine-tuning.

Two methods (``ReflowConfig.method``), both giving an ordinary ``fm`` network sampled with ``K`` Euler steps
(``K`` network calls; ``K = 1``: one call per sample):

* ``reflow`` (rectified flow; Liu, Gong & Liu 2022): straighten the teacher's paths, below.
* ``crps`` (FGN / AIFS-CRPS style; Alet et al. 2025, Lang et al. 2024): fine-tune the teacher's network so
  that its ``K``-step Euler map from noise, ``x = Φ_θ(z | c)``, is a good *ensemble* of the data: draw ``M``
  noises per condition, run the map (differentiably), and minimise the fair CRPS of those ``M`` members
  against the data ``x1`` of that condition (:func:`fair_crps_loss`), averaged over every element with the
  source's weights. No teacher samples are needed (the teacher is only the starting point), and the
  objective is the score the ensemble is judged by, so its spread is learned rather than inherited.
  The CRPS is proper for each element's marginal only: right for fields scored point by point (weather).
* ``energy``: the same with the fair *energy score* of each whole sample, ``E‖X − y‖ − ½E‖X − X′‖``
  (:func:`fair_energy_loss`), which is proper for the joint law: for samples whose parts must fit together
  (a molecule's coordinates) and for unconditional ensembles.

Convention (see :mod:`models`): ``x_t = (1-t)·x0 + t·x1``, ``x0 ~ N(0, I)`` noise, ``x1`` data, t: 0 → 1.

1. **Couplings.** The teacher (any objective, any sampler, many steps, optional CFG scale) maps noise
   ``z`` to a sample ``ẑ = Φ_teacher(z | c)`` for conditions ``c`` drawn from the training data. Its ODE
   is deterministic, so ``(z, ẑ, c)`` is a coupling of noise and (teacher) data.
2. **Student.** A network of the same architecture (initialised from the teacher by default) is trained
   with flow matching on the *straight* interpolation of each pair: ``x_t = (1-t)·z + t·ẑ``, target
   ``ẑ - z``. The student's flow is straight where the coupling is, so Euler with ``K`` steps (``K``
   network calls) reproduces the teacher's many-step map; ``time_sampling="grid"`` trains only at the
   times ``{0, 1/K, ..., (K-1)/K}`` where ``K``-step Euler queries it (``K = 1``: direct distillation,
   Luhman & Luhman 2021), ``"mixed"`` half of each batch there and half uniform.

A teacher that samples from scaled noise ``x0 = λ·z`` (a spread-calibrated sampler, ``noise_scale``; λ
broadcasts over a sample, e.g. one value per channel) gives couplings ``(λ·z, ẑ)``: the student then
learns straight paths from that same scaled noise and must be sampled from it too.

Why reflow for our setting: the student is an ordinary flow-matching model (same network, same
``net(x, t, condition)`` signature, no extra step-size input as shortcut models need, no skip
parametrisation as consistency models need), so it loads and samples through every normal path;
CFG is distilled for free (pairs drawn at the guided scale); its cost is the one-off teacher sampling plus
a short fine-tune, which fits a small CPU budget. Measured against the teacher in
``tests/models/test_distillation.py`` and ``tests/benchmarks/bench_sampling.py``.

The student checkpoint (``RUN/checkpoints/step_*/``, safetensors + JSON) carries, in ``extra``:
``objective="fm"``, ``sampler="euler"``, ``sampler_steps=K`` and a ``distillation`` record.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from models.guidance import Condition, map_condition
from models.objectives import Objective, make_objective
from models.randomness import Stream, Streams
from models.samplers import Denoiser, GridKind, sample, time_grid
from models.training.checkpoint import save_checkpoint
from models.training.data import BatchSource
from models.training.ema import EMA

TimeSampling = Literal["uniform", "grid", "mixed"]
DistillMethod = Literal["reflow", "crps", "energy"]


class ReflowConfig(BaseModel):
    """Distillation settings (``student_steps`` = K, the Euler steps the student is made for; ``method`` reflow or
    crps, see the module doc; ``members`` = M, the ensemble per condition of the crps method; ``pairs`` and the
    ``teacher_*`` fields are reflow's)."""

    model_config = ConfigDict(extra="forbid")

    method: DistillMethod = "reflow"
    members: int = 2
    student_steps: int = 4
    teacher_sampler: str = "heun"
    teacher_steps: int = 16
    teacher_grid: GridKind = "auto"
    teacher_guidance: float | None = None
    pairs: int = 4096
    pair_batch_size: int = 256  # conditions per teacher batch (callers size their condition source with it)
    time_sampling: TimeSampling = "mixed"
    init_from_teacher: bool = True
    steps: int = 1000
    batch_size: int = 256
    lr: float = 5e-4
    warmup_steps: int = 20
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.99
    seed: int = 0
    log_every: int = 25
    max_minutes: float | None = None


@dataclass
class Couplings:
    """Teacher couplings: ``noise`` ``[N, ...]`` → ``samples`` ``[N, ...]`` under ``condition`` (nest, N rows),
    with optional loss ``weight`` (broadcastable to one batch, e.g. latitude weights) and the teacher's
    network calls per sample ``nfe``."""

    noise: Tensor
    samples: Tensor
    condition: Condition = None
    weight: Tensor | None = None
    nfe: int = 0

    def __len__(self) -> int:
        return int(self.noise.shape[0])

    def take(self, index: Tensor) -> tuple[Tensor, Tensor, Condition]:
        return self.noise[index], self.samples[index], map_condition(lambda v: v[index], self.condition)


def _cat_conditions(parts: list[Condition]) -> Condition:
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, Tensor):
        return torch.cat(parts)  # type: ignore[arg-type]
    if isinstance(first, dict):
        return {k: _cat_conditions([p[k] for p in parts]) for k in first}  # type: ignore[index]
    return type(first)(_cat_conditions([p[i] for p in parts]) for i in range(len(first)))  # type: ignore[index]


@torch.no_grad()
def teacher_couplings(
    teacher: nn.Module,
    objective: Objective,
    *,
    source: BatchSource,
    config: ReflowConfig,
    noise_scale: Tensor | float = 1.0,
    progress: Any = None,
) -> Couplings:
    """``config.pairs`` teacher couplings for conditions (and loss weights) drawn from ``source``.

    Batch ``10_000_000 + k`` of the source (``k = 0, 1, ...``; offset so it differs from the batches the
    teacher was trained on at the same seed) gives the conditions and loss weight (its ``x1`` is not used);
    the noise comes from the ``pair_noise`` stream of ``config.seed`` at ``k`` (a stochastic teacher sampler's
    from the ``sampler`` stream), scaled by ``noise_scale`` (broadcast over one sample), and is stored scaled.
    ``progress(n)`` is called with the pairs done.
    """
    teacher.eval()
    noises, samples, conds = [], [], []
    weight: Tensor | None = None
    done, k, nfe = 0, 0, 0
    grid = time_grid(objective.path, config.teacher_steps, kind=config.teacher_grid)
    streams = Streams(config.seed)
    while done < config.pairs:
        batch = source.batch(10_000_000 + k)
        take = min(batch.x1.shape[0], config.pairs - done)
        cond = map_condition(lambda v, n=take: v[:n], batch.condition)
        gen = streams.generator(Stream.PAIR_NOISE, k)
        noise = noise_scale * torch.randn((take, *batch.x1.shape[1:]), generator=gen, dtype=batch.x1.dtype)
        den = Denoiser(teacher, objective, condition=cond, guidance=config.teacher_guidance)
        out = sample(den, noise, sampler=config.teacher_sampler, steps=config.teacher_steps, grid=grid,
                     generator=streams.generator(Stream.SAMPLER, k))
        nfe = out.nfe
        noises.append(noise)
        samples.append(out.samples.float())
        conds.append(cond)
        if weight is None and batch.weight is not None:
            weight = batch.weight
        done += take
        k += 1
        if progress is not None:
            progress(done)
    return Couplings(torch.cat(noises), torch.cat(samples), _cat_conditions(conds), weight, nfe)


def reflow_times(batch: int, *, steps: int, mode: TimeSampling, generator: torch.Generator) -> Tensor:
    """Training times for a ``steps``-step Euler student: uniform on [0, 1), the Euler grid
    ``{0, 1/K, ..., (K-1)/K}``, or ``mixed`` (first half grid, second half uniform)."""
    uniform = torch.rand(batch, generator=generator)
    grid = torch.randint(0, steps, (batch,), generator=generator).float() / steps
    if mode == "uniform":
        return uniform
    if mode == "grid":
        return grid
    half = batch // 2
    return torch.cat([grid[:half], uniform[half:]])


@dataclass
class DistillResult:
    """The student (EMA weights), the couplings used (reflow; None for crps), the last metrics, and the checkpoint
    written."""

    student: nn.Module
    couplings: Couplings | None
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    losses: list[float] = field(default_factory=list)


def _lr(step: int, config: ReflowConfig) -> float:
    if config.warmup_steps > 0 and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def student_metadata(config: ReflowConfig, *, teacher_objective: str, couplings: Couplings | None) -> dict[str, Any]:
    """What a student checkpoint records: its objective, its sampler and steps, and how it was made."""
    record: dict[str, Any] = {"method": config.method, "teacher_objective": teacher_objective,
                              "config": config.model_dump(mode="json")}
    if config.method == "reflow":
        record.update(teacher_sampler=config.teacher_sampler, teacher_steps=config.teacher_steps,
                      teacher_nfe=couplings.nfe if couplings is not None else None,
                      teacher_guidance=config.teacher_guidance, pairs=len(couplings) if couplings is not None else 0)
    else:
        record.update(members=config.members)
    return {"objective": "fm", "sampler": "euler", "sampler_steps": config.student_steps, "distillation": record}


def recorded_sampler(
    metadata: dict[str, Any], sampler: str | None, steps: int | None, *, default: tuple[str, int] = ("heun", 8)
) -> tuple[str, int]:
    """The sampler and steps to use: those given, else the checkpoint's (a distilled student records the
    ones it was distilled for, see :func:`student_metadata`), else ``default``."""
    return sampler or metadata.get("sampler") or default[0], int(steps or metadata.get("sampler_steps") or default[1])


def fair_crps_loss(samples: Tensor, target: Tensor, weight: Tensor | None = None,
                   mask: Tensor | None = None) -> Tensor:
    """The fair CRPS of the ensemble ``samples`` ``[M, B, ...]`` (M ≥ 2) against ``target`` ``[B, ...]``, averaged
    over every element (``weight`` and ``mask`` broadcast to ``target``):
    ``(1/M) Σ_m |x_m − y| − 1/(2M(M−1)) Σ_{m≠n} |x_m − x_n|`` (unbiased for the CRPS of the members' law)."""
    m = samples.shape[0]
    if m < 2:
        raise ValueError("the fair CRPS needs at least 2 members")
    skill = (samples - target.unsqueeze(0)).abs().mean(0)
    spread = (samples.unsqueeze(0) - samples.unsqueeze(1)).abs().sum((0, 1)) / (2 * m * (m - 1))
    crps = skill - spread
    w = torch.ones_like(crps)
    if weight is not None:
        w = w * weight
    if mask is not None:
        w = w * mask
    return (crps * w).sum() / w.sum().clamp_min(1e-12)


def fair_energy_loss(samples: Tensor, target: Tensor, weight: Tensor | None = None,
                     mask: Tensor | None = None) -> Tensor:
    """The fair energy score of the ensemble ``samples`` ``[M, B, ...]`` (M ≥ 2) against ``target`` ``[B, ...]``,
    averaged over the batch: ``(1/M) Σ_m ‖x_m − y‖ − 1/(2M(M−1)) Σ_{m≠n} ‖x_m − x_n‖`` with ‖·‖ the (weighted)
    Euclidean norm over each sample's elements."""
    m = samples.shape[0]
    if m < 2:
        raise ValueError("the fair energy score needs at least 2 members")
    w = torch.ones_like(target)
    if weight is not None:
        w = w * weight
    if mask is not None:
        w = w * mask
    flat_w = w.reshape(1, target.shape[0], -1)
    d_truth = ((samples - target.unsqueeze(0)).reshape(m, target.shape[0], -1).square() * flat_w).sum(-1)
    diff = (samples.unsqueeze(0) - samples.unsqueeze(1)).reshape(m, m, target.shape[0], -1)
    d_pair = (diff.square() * flat_w.unsqueeze(0)).sum(-1)
    eps = 1e-12  # the norm's gradient at 0 (a member pair on the diagonal)
    skill = (d_truth + eps).sqrt().mean(0)
    off = ~torch.eye(m, dtype=torch.bool, device=samples.device)
    spread = (d_pair[off] + eps).sqrt().sum(0) / (2 * m * (m - 1))
    return (skill - spread).mean()


SCORES = {"crps": fair_crps_loss, "energy": fair_energy_loss}


def euler_map(net: nn.Module, objective: Objective, noise: Tensor, condition: Condition, *, steps: int) -> Tensor:
    """``steps`` Euler steps of ``objective``'s velocity from ``noise`` at t = 0 to t = 1, differentiable (the map
    a ``steps``-step Euler sampler computes)."""
    x = noise
    for k in range(steps):
        t = torch.full((x.shape[0],), k / steps, dtype=x.dtype, device=x.device)
        x = x + objective.predict(net, x, t, condition).velocity / steps
    return x


def _repeat_condition(condition: Condition, times: int) -> Condition:
    return map_condition(lambda v: v.repeat(times, *([1] * (v.dim() - 1))), condition)


def crps_loss_step(student: nn.Module, objective: Objective, batch: Any, *, config: ReflowConfig,
                   noise_scale: Tensor | float, generator: torch.Generator) -> Tensor:
    """The crps (or energy) method's loss on one data batch: ``M`` members per condition from ``noise_scale``·z
    through the student's ``K``-step Euler map, scored by :data:`SCORES` ``[config.method]`` against the data."""
    x1 = batch.x1
    b, m = x1.shape[0], config.members
    noise = noise_scale * torch.randn((m * b, *x1.shape[1:]), generator=generator, dtype=x1.dtype)
    samples = euler_map(student, objective, noise, _repeat_condition(batch.condition, m), steps=config.student_steps)
    return SCORES[config.method](samples.reshape(m, b, *x1.shape[1:]), x1, batch.weight, batch.mask)


def reflow_distill(
    *,
    teacher: nn.Module,
    teacher_objective: Objective,
    source: BatchSource | None = None,
    config: ReflowConfig,
    student: nn.Module | None = None,
    couplings: Couplings | None = None,
    run_dir: str | Path | None = None,
    extra: dict[str, Any] | None = None,
    teacher_objective_name: str = "",
    noise_scale: Tensor | float = 1.0,
    progress: Any = None,
) -> DistillResult:
    """Distil ``teacher`` into a ``config.student_steps``-step Euler student by ``config.method`` (module doc).

    ``student`` defaults to a copy of the teacher (``init_from_teacher``); give a fresh network of the same
    signature otherwise. Reflow draws its couplings from ``source`` unless given, the teacher starting from
    ``noise_scale``·z; crps trains on ``source``'s data batches, its members starting from ``noise_scale``·z.
    With ``run_dir`` one checkpoint (safetensors + JSON) is written at the end, its ``extra`` = ``extra``
    updated by :func:`student_metadata`. ``progress(stage, done, total)`` reports pairs and steps.
    """
    if config.method in SCORES:
        if source is None:
            raise ValueError(f"the {config.method} method trains on data: it needs a `source`")
        if config.members < 2:
            raise ValueError(f"the {config.method} method needs at least 2 members per condition, got {config.members}")
    elif couplings is None:
        if source is None:
            raise ValueError("reflow_distill needs a source of conditions or ready couplings")
        report = (lambda n: progress("pairs", n, config.pairs)) if progress is not None else None
        couplings = teacher_couplings(teacher, teacher_objective, source=source, config=config,
                                      noise_scale=noise_scale, progress=report)
    if student is None:
        student = copy.deepcopy(teacher)
        if not config.init_from_teacher:
            raise ValueError("init_from_teacher=False needs a fresh `student` network")
    student.train()
    objective = make_objective("fm")
    streams = Streams(config.seed)
    streams.seed_global(Stream.NETWORK)
    ema = EMA(student, decay=config.ema_decay)
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    losses: list[float] = []
    metrics: dict[str, float] = {}
    start = time.monotonic()
    log = None
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        log = open(Path(run_dir) / "metrics.jsonl", "a")  # noqa: SIM115  (closed in the finally below)
    step = 0
    try:
        while step < config.steps:
            if config.max_minutes is not None and time.monotonic() - start > 60 * config.max_minutes:
                break
            for group in opt.param_groups:
                group["lr"] = _lr(step, config)
            if config.method in SCORES:
                # batches offset from the teacher's own training batches at the same seed
                loss = crps_loss_step(student, objective, source.batch(20_000_000 + step), config=config,
                                      noise_scale=noise_scale, generator=streams.generator(Stream.NOISE, step))
            else:
                n = len(couplings)
                batch = min(config.batch_size, n)
                index = torch.randint(0, n, (batch,), generator=streams.generator(Stream.PAIRS, step))
                noise, x1, cond = couplings.take(index)
                t = reflow_times(batch, steps=config.student_steps, mode=config.time_sampling,
                                 generator=streams.generator(Stream.TIME, step))
                loss = objective.loss(student, x1, cond, weight=couplings.weight, t=t, noise=noise).loss
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            ema.update(student)
            step += 1
            losses.append(float(loss.detach()))
            if step % config.log_every == 0 or step == config.steps:
                metrics = {"step": step, "loss": losses[-1], "elapsed_s": time.monotonic() - start}
                if log is not None:
                    log.write(json.dumps(metrics) + "\n")
                    log.flush()
            if progress is not None:
                progress("steps", step, config.steps)
    finally:
        if log is not None:
            log.close()
    final = copy.deepcopy(student)
    ema.copy_to(final)
    final.eval()
    metrics.setdefault("step", step)
    metrics["seconds"] = time.monotonic() - start
    checkpoint = None
    if run_dir is not None:
        meta = dict(extra or {})
        meta.update(student_metadata(config, teacher_objective=teacher_objective_name, couplings=couplings))
        checkpoint = save_checkpoint(
            run_dir, step=step, model=student.state_dict(), ema=ema.state_dict(), optimizer=None,
            rng={"torch_cpu": torch.get_rng_state()}, config=config.model_dump(mode="json"), extra=meta, keep=1,
        )
    return DistillResult(student=final, couplings=couplings, metrics=metrics, checkpoint=checkpoint, losses=losses)


__all__ = [
    "Couplings",
    "DistillMethod",
    "DistillResult",
    "ReflowConfig",
    "crps_loss_step",
    "euler_map",
    "fair_crps_loss",
    "fair_energy_loss",
    "recorded_sampler",
    "reflow_distill",
    "reflow_times",
    "student_metadata",
    "teacher_couplings",
]
