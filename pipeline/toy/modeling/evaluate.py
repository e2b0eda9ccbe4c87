"""``velocast evaluate toy``: how close samples are to the 8-Gaussian mixture.

Metrics (``metrics.json``): the sliced 2-Wasserstein distance to as many fresh draws of the mixture, the
same distance between two fresh draws (the floor a perfect sampler reaches at this sample size), the
fraction of samples nearest each mode and the largest deviation from the equal 1/8. The two fresh draws and
the random projections come from their own streams of ``seed`` (:mod:`models.randomness`), apart from the
sampling noise of ``velocast sample toy`` at the same seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from models.randomness import Streams
from models.toy import eight_gaussians, mixture_weights, sliced_wasserstein
from pipeline.config import StrictModel
from pipeline.errors import UserError

REFERENCE, FLOOR, PROJECTIONS = "reference", "floor", "projections"  # the streams of the evaluation


class EvaluateConfig(StrictModel):
    """Options of ``velocast evaluate toy``."""

    samples: str = Field(description="samples (.npz) written by `velocast sample toy`")
    seed: int = Field(0, description="seed of the fresh reference draws and the random projections")


def toy_metrics(samples: np.ndarray, *, seed: int = 0, nfe: int | None = None) -> dict[str, Any]:
    """The metrics of the module doc for ``samples`` ``(n, 2)``."""
    x = torch.as_tensor(samples, dtype=torch.float32)
    n = x.shape[0]
    streams = Streams(seed)
    ref, _ = eight_gaussians(n, generator=streams.generator(REFERENCE))
    other, _ = eight_gaussians(n, generator=streams.generator(FLOOR))
    weights = mixture_weights(x)

    def sw2(a: torch.Tensor, b: torch.Tensor) -> float:
        return sliced_wasserstein(a, b, generator=streams.generator(PROJECTIONS))

    return {"n": int(n), "nfe": nfe, "sliced_w2": sw2(x, ref), "sliced_w2_floor": sw2(other, ref),
            "mode_weights": [round(float(w), 4) for w in weights],
            "mode_weight_error": float((weights - 1 / 8).abs().max())}


def load_samples(path: str | Path) -> tuple[np.ndarray, int | None]:
    """(samples, NFE) of an ``.npz`` written by ``velocast sample toy``."""
    path = Path(path)
    if not path.is_file():
        raise UserError("samples file not found; write one with `velocast sample toy --out FILE.npz`", path=path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data["samples"]), int(data["nfe"]) if "nfe" in data else None
    except (ValueError, KeyError, OSError) as exc:
        raise UserError(f"not a samples file of `velocast sample toy` ({exc})", path=path) from None


def evaluate_toy(config: EvaluateConfig, *, out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Score the samples; write ``metrics.json``, ``report.md`` and ``samples.png`` into ``out``."""
    from pipeline.toy.report import write_report

    samples, nfe = load_samples(config.samples)
    metrics = toy_metrics(samples, seed=config.seed, nfe=nfe)
    metrics["samples"] = str(config.samples)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    write_report(metrics, samples, out)
    return metrics
