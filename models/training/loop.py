"""The generic training loop: AdamW, linear warmup + cosine LR, gradient clipping, EMA, bf16 autocast (on CUDA,
or ``amp: native`` also on a CPU with bf16 instructions), seeded determinism, safetensors checkpoints with exact
resume, DDP under torchrun, JSONL metrics, optional TensorBoard, a wall-clock budget, periodic validation, a
rich progress bar.

Randomness of step ``k``: the training times, the noise and the CFG drop mask each come from their own
stream of :mod:`models.randomness`, keyed by ``(seed, stream, k)``, drawn for the *global* batch, each rank
taking its slice; the network's own draws (dropout) use torch's global generator, seeded from the
``network`` stream and saved in checkpoints. So the streams are independent of each other and of the data
source's, a resumed run continues the same run bitwise on CPU, and DDP over ``w`` ranks equals one
process at the same global batch (the per-rank losses are means over equal-size shards, averaged by DDP).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from models.guidance import sample_drop_mask
from models.objectives import Objective, ObjectiveSpec, make_objective
from models.randomness import Stream, Streams
from models.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from models.training.data import BatchSource
from models.training.distributed import DistInfo, barrier, init_distributed, max_over_ranks
from models.training.ema import EMA

log = logging.getLogger(__name__)


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic instructions (the ``avx512_bf16`` or ``amx_bf16`` flag of Linux's
    /proc/cpuinfo); False where that cannot be read."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


class TrainConfig(BaseModel):
    """Training hyper-parameters (``batch_size`` is the global batch over all ranks)."""

    model_config = ConfigDict(extra="forbid")

    objective: ObjectiveSpec | str = "fm"
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0)
    ema_decay: float = Field(0.999, ge=0, lt=1)
    cond_dropout: float = Field(0.0, ge=0, lt=1)
    seed: int = Field(0, ge=0)
    amp: Literal["auto", "native", "bf16", "off"] = "auto"
    """bf16 autocast of the forward pass and loss: ``auto`` on CUDA only; ``native`` on CUDA and on a CPU whose
    instructions compute bf16 (AVX512-BF16 or AMX: Zen 4, Cooper Lake, Sapphire Rapids and later), where the weather
    U-Net trained 1.6× faster per step (tests/benchmarks/bench_weather.py --speedups); ``bf16`` always (slow
    where the CPU emulates it); ``off`` never. Inference is float32 either way."""
    device: str = "auto"
    log_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(500, ge=0)  # 0: only the final checkpoint
    keep_checkpoints: int = Field(3, ge=0)
    validate_every: int = Field(0, ge=0)
    max_minutes: float | None = Field(None, ge=0)
    tensorboard: bool = False
    threads: int | None = Field(default=None, ge=1)
    """CPU threads torch uses (None: the process's setting). The count a run used is recorded in its
    checkpoints and a resume without ``threads`` reuses it: the reduction order of CPU kernels depends on
    it, so a different count changes results in the last bits (~1e-7 per step)."""


def lr_at(step: int, config: TrainConfig, *, budget_fraction: float = 0.0) -> float:
    """Linear warmup over ``warmup_steps`` then cosine decay to ``min_lr_ratio·lr``.

    The cosine runs over whichever ends first: the remaining steps or the wall-clock budget
    (``budget_fraction`` = elapsed / ``max_minutes`` of this invocation), so a run stopped by its time
    budget has still annealed its learning rate: ``progress = max((step - warmup) / (steps - warmup),
    budget_fraction)``.
    """
    if config.warmup_steps > 0 and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, max((step - config.warmup_steps) / span, budget_fraction))
    floor = config.min_lr_ratio
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    """Final step, the network (raw weights) and an EMA copy, the last logged metrics, why it stopped."""

    step: int
    net: nn.Module
    ema_net: nn.Module
    metrics: dict[str, float] = field(default_factory=dict)
    stopped: Literal["done", "time_budget"] = "done"
    checkpoint: Path | None = None


Validate = Callable[[int, nn.Module], dict[str, float]]


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state[f"cuda_{device.index or 0}"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict[str, torch.Tensor], device: torch.device) -> None:
    if "torch_cpu" in state:
        torch.set_rng_state(state["torch_cpu"])
    key = f"cuda_{device.index or 0}"
    if device.type == "cuda" and key in state:
        torch.cuda.set_rng_state(state[key], device)


def step_randomness(
    streams: Streams,
    step: int,
    objective: Objective,
    *,
    batch_size: int,
    shape: torch.Size | tuple[int, ...],
    dtype: torch.dtype,
    cond_dropout: float = 0.0,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The training times ``[B]``, noise ``[B, *shape]`` and CFG drop mask ``[B]`` (``None`` without
    ``cond_dropout``) of step ``step`` for the global batch ``B``, each from its own stream."""
    t = objective.time_sampler(
        batch_size, path=objective.path, generator=streams.generator(Stream.TIME, step, device=device), device=device
    )
    noise = torch.randn(
        (batch_size, *shape), generator=streams.generator(Stream.NOISE, step, device=device), device=device, dtype=dtype
    )
    drop = None
    if cond_dropout > 0:
        gen = streams.generator(Stream.COND_DROP, step, device=device)
        drop = sample_drop_mask(batch_size, cond_dropout, generator=gen, device=device)
    return t, noise, drop


def train(
    *,
    net: nn.Module,
    data: BatchSource,
    config: TrainConfig,
    run_dir: str | Path | None = None,
    objective: Objective | None = None,
    validate: Validate | None = None,
    progress: bool = False,
    resume: bool = True,
    extra: dict[str, Any] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``net`` on ``data`` with ``config``; checkpoints and ``metrics.jsonl`` go to ``run_dir``.

    Resumes from the newest checkpoint in ``run_dir`` when ``resume`` is true. Under torchrun
    (``WORLD_SIZE > 1``) it joins the process group and wraps ``net`` in DDP. ``extra`` is stored in every
    checkpoint's ``state.json`` (e.g. the domain's config and network arguments). ``on_step(step)`` is called
    after every optimisation step on the main rank (progress for orchestrators).
    """
    info: DistInfo = init_distributed(config.device)
    device = info.device
    if config.batch_size % info.world_size:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by world size {info.world_size}")
    objective = objective or make_objective(config.objective)
    run = Path(run_dir) if run_dir is not None else None
    resuming = run is not None and resume and latest_checkpoint(run) is not None
    ckpt = load_checkpoint(run) if resuming else None
    threads = config.threads or (ckpt.config.get("threads") if ckpt is not None else None)
    if threads:
        if ckpt is not None and config.threads is None and torch.get_num_threads() != threads:
            log.info("resuming with the %d CPU threads the run started with (set train.threads to change)", threads)
        torch.set_num_threads(int(threads))
    if device.type == "cpu":
        log.info("training on the CPU with %d torch threads", torch.get_num_threads())
    streams = Streams(config.seed)
    streams.seed_global(Stream.NETWORK)
    net = net.to(device)
    ema = EMA(net, decay=config.ema_decay)
    opt = torch.optim.AdamW(
        net.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, foreach=True
    )
    step = 0
    if ckpt is not None:
        net.load_state_dict(ckpt.model)
        ema.load_state_dict(ckpt.ema)
        if ckpt.optimizer is not None:
            opt.load_state_dict(ckpt.optimizer)
        _restore_rng(ckpt.rng, device)
        step = ckpt.step
    model: nn.Module = net
    if info.enabled:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    use_amp = config.amp == "bf16" or (config.amp in ("auto", "native") and device.type == "cuda") or (
        config.amp == "native" and device.type == "cpu" and cpu_computes_bf16())
    if use_amp and device.type == "cpu":
        log.info("bf16 autocast on the CPU (train.amp: %s)", config.amp)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_amp else nullcontext

    writer = None
    metrics_file = None
    if run is not None and info.is_main:
        run.mkdir(parents=True, exist_ok=True)
        _truncate_metrics(run / "metrics.jsonl", step)
        metrics_file = open(run / "metrics.jsonl", "a")  # noqa: SIM115  (closed in the finally below)
        if config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(str(run / "tensorboard"))
            except ImportError:
                writer = None

    config_json = {**config.model_dump(mode="json"), "threads": torch.get_num_threads()}
    last_ckpt: Path | None = None

    def checkpoint() -> None:
        nonlocal last_ckpt
        if run is not None and info.is_main:
            last_ckpt = save_checkpoint(
                run,
                step=step,
                model=net.state_dict(),
                ema=ema.state_dict(),
                optimizer=opt.state_dict(),
                rng=_rng_state(device),
                config=config_json,
                extra=extra,
                keep=config.keep_checkpoints,
            )
        barrier(info)

    bar = None
    if progress and info.is_main and step < config.steps:
        from models.progress import progress_bar

        bar = progress_bar(extra="{task.fields[loss]}")
        task = bar.add_task("train", total=config.steps, completed=step, loss="")
        bar.start()

    start = time.monotonic()
    window_start, window_steps = start, 0
    metrics: dict[str, float] = {}
    stopped: Literal["done", "time_budget"] = "done"
    global_b = config.batch_size
    local_b = global_b // info.world_size
    sl = slice(info.rank * local_b, (info.rank + 1) * local_b)
    try:
        while step < config.steps:
            budget_fraction = 0.0
            if config.max_minutes is not None:
                # one value for every rank, so DDP ranks share the stop decision and the learning rate
                budget_s = 60.0 * config.max_minutes
                elapsed = time.monotonic() - start
                budget_fraction = max_over_ranks(elapsed / budget_s if budget_s > 0 else math.inf, info)
                if budget_fraction >= 1.0:
                    stopped = "time_budget"
                    break
            lr = lr_at(step, config, budget_fraction=budget_fraction)
            for group in opt.param_groups:
                group["lr"] = lr
            batch = data.batch(step, rank=info.rank, world_size=info.world_size).to(device)
            t, noise, drop = step_randomness(
                streams, step, objective, batch_size=global_b, shape=batch.x1.shape[1:], dtype=batch.x1.dtype,
                cond_dropout=config.cond_dropout, device=device,
            )
            t, noise = t[sl], noise[sl]
            drop = None if drop is None else drop[sl]
            with autocast():
                out = objective.loss(
                    model,
                    batch.x1,
                    batch.condition,
                    weight=batch.weight,
                    mask=batch.mask,
                    t=t,
                    noise=noise,
                    drop=drop,
                )
            out.loss.backward()
            grad_norm = float("nan")
            if config.grad_clip is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip))
            opt.step()
            opt.zero_grad(set_to_none=True)
            ema.update(net)
            step += 1
            window_steps += 1
            if info.is_main and (step % config.log_every == 0 or step == config.steps):
                now = time.monotonic()
                metrics = {
                    "step": step,
                    "loss": float(out.loss.detach()),
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "steps_per_s": window_steps / max(now - window_start, 1e-9),
                    "elapsed_s": now - start,
                }
                window_start, window_steps = now, 0
                if metrics_file is not None:
                    metrics_file.write(json.dumps(metrics) + "\n")
                    metrics_file.flush()
                if writer is not None:
                    for key, value in metrics.items():
                        if key != "step":
                            writer.add_scalar(f"train/{key}", value, step)
                if bar is not None:
                    bar.update(task, loss=f"loss {metrics['loss']:.4f}")
            if bar is not None:
                bar.update(task, completed=step)
            if on_step is not None and info.is_main:
                on_step(step)
            if (
                validate is not None
                and config.validate_every
                and step % config.validate_every == 0
                and info.is_main
            ):
                ema_net = _ema_copy(net, ema)
                vals = {f"val/{k}": float(v) for k, v in validate(step, ema_net).items()}
                if metrics_file is not None:
                    metrics_file.write(json.dumps({"step": step, **vals}) + "\n")
                    metrics_file.flush()
                metrics.update(vals)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.steps:
                checkpoint()
        checkpoint()
    finally:
        if bar is not None:
            bar.stop()
        if metrics_file is not None:
            metrics_file.close()
        if writer is not None:
            writer.close()
    return TrainResult(
        step=step,
        net=net,
        ema_net=_ema_copy(net, ema),
        metrics=metrics,
        stopped=stopped,
        checkpoint=last_ckpt,
    )


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the rows logged after ``step`` (the checkpoint a run resumes from): a run killed after its last
    checkpoint logged steps it will now train again, which must not appear twice. Rewritten atomically."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    keep = []
    for line in lines:
        try:
            row_step = int(json.loads(line).get("step", 0))
        except (ValueError, AttributeError):
            continue  # a line cut by the kill
        if row_step <= step:
            keep.append(line)
    if len(keep) != len(lines):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text("".join(f"{line}\n" for line in keep))
        os.replace(tmp, path)


def _ema_copy(net: nn.Module, ema: EMA) -> nn.Module:
    import copy

    clone = copy.deepcopy(net)
    ema.copy_to(clone)
    clone.eval()
    return clone
