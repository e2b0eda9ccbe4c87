"""``velocast sample toy``: points drawn from a trained toy model, written as ``.npz`` (or a ``.png`` scatter)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from models.randomness import Stream, Streams
from models.samplers import Denoiser, sample
from pipeline.config import StrictModel
from pipeline.errors import UserError
from pipeline.toy.modeling.model import MODES, load_toy_model

Grid = Literal["auto", "uniform", "karras"]


class SampleConfig(StrictModel):
    """Options of ``velocast sample toy``."""

    model: str = Field(description="run directory written by `velocast train toy` (or a checkpoint directory)")
    n: int = Field(2000, ge=1, description="number of samples")
    sampler: str = Field("heun", description="euler, heun, midpoint, dpmpp_2s or churn")
    steps: int = Field(32, ge=1, description="integration steps (any number, whatever the training)")
    grid: Grid = Field("auto", description="time grid: auto (uniform for flow matching, karras for the others), "
                                           "uniform (in t) or karras (EDM ρ-spaced)")
    guidance: float | None = Field(None, description="classifier-free guidance scale (conditional models)")
    mode: int | None = Field(None, ge=0, le=MODES - 1, description="mode 0-7 to condition on (conditional models)")
    seed: int = Field(0, description="noise seed")
    raw: bool = Field(False, description="use the raw weights instead of the EMA weights")


@dataclass(frozen=True)
class ToySamples:
    """Drawn points ``(n, 2)``, the network calls per sample, the time grid and the seconds spent."""

    samples: np.ndarray
    nfe: int
    grid: np.ndarray
    seconds: float
    sampler: str
    steps: int
    mode: int | None


def draw(config: SampleConfig) -> ToySamples:
    """Sample the model of ``config`` (one thread: a 2-D MLP gains nothing from more)."""
    from models.samplers import SAMPLERS

    if config.sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {config.sampler!r}; choose one of {', '.join(sorted(SAMPLERS))}")
    if not Path(config.model).exists():
        raise UserError("model run directory not found; train one with `velocast train toy --out DIR`",
                        path=config.model)
    torch.set_num_threads(1)
    model = load_toy_model(config.model, raw=config.raw)
    condition = None
    if model.conditional:
        labels = torch.full((config.n,), config.mode) if config.mode is not None else torch.arange(config.n) % MODES
        condition = torch.nn.functional.one_hot(labels, MODES).float()
    elif config.mode is not None or config.guidance is not None:
        raise UserError("--mode/--guidance need a conditional model (train with conditional: true)")
    streams = Streams(config.seed)
    noise = torch.randn(config.n, 2, generator=streams.generator(Stream.NOISE))
    denoiser = Denoiser(model.net, model.objective, condition=condition, guidance=config.guidance)
    start = time.perf_counter()
    with torch.no_grad():
        result = sample(denoiser, noise, sampler=config.sampler, steps=config.steps, grid=config.grid,
                        generator=streams.generator(Stream.SAMPLER))
    return ToySamples(samples=result.samples.float().numpy(), nfe=result.nfe, grid=result.grid.numpy(),
                      seconds=time.perf_counter() - start, sampler=config.sampler, steps=config.steps,
                      mode=config.mode)


def sample_toy(config: SampleConfig, *, out: str | Path, progress: bool = True) -> ToySamples:
    """Draw the samples and write ``out``: ``.npz`` (samples, nfe, grid) or ``.png`` (a scatter over the data)."""
    out = Path(out)
    if out.suffix not in (".npz", ".png"):
        raise UserError("--out must end in .npz or .png", path=out)
    drawn = draw(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    if out.suffix == ".npz":
        with open(tmp, "wb") as handle:
            np.savez(handle, samples=drawn.samples, nfe=drawn.nfe, grid=drawn.grid)
    else:
        from pipeline.toy.report import plot_samples

        plot_samples(drawn.samples, tmp, title=f"{drawn.sampler} × {drawn.steps}: NFE {drawn.nfe}")
    tmp.replace(out)
    return drawn
