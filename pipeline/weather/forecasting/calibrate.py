"""Spread calibration: the sampler noise's size λ and memory ρ, fitted on the validation period.

A flow-matching ensemble trained for minutes is mis-dispersed in two ways: too much spread after one
step, and errors that grow faster than the spread over the following days (the model's own errors
persist from step to step, while fresh noise at every step only adds up like a random walk). Two knobs
act on the sampler noise of every forecast step, ``x₀ = λ·ε_k``:

* λ (``noise_scale``) sizes it, as the inflation factor of ensemble data assimilation does;
* ρ (``noise_memory``) correlates it between consecutive steps of a member, ``ε_k = ρ·ε_{k-1} +
  √(1-ρ²)·η_k`` (AR(1); every ``ε_k`` is still N(0, I)), as the AR(1) random patterns of stochastic
  physics do (ECMWF's SPPT): a member's deviations then persist, and its spread grows like the error.

Both are fitted on validation init times — never the test period: for each ρ of a small grid, λ is
iterated (``λ ← λ / SSR(λ)``, a secant step on ``log λ`` after the first, each step at most ×/÷ 1.5) so
that the spread/skill ratio, averaged over channels and the leads in ``[min_lead, lead]``, is 1; the
pair whose SSR curve stays closest to 1 at every scored lead (smallest max |log SSR|) wins. The result
is written to ``RUN/calibration.json``; ``velocast forecast weather`` uses it unless ``--noise-scale`` /
``--noise-memory`` are given.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field

from models.distillation import recorded_sampler
from pipeline.config import StrictModel
from pipeline.evaluation.ensemble import channel_scores
from pipeline.weather.forecasting.data import stack_channels
from pipeline.weather.forecasting.forecast import initial_history, parse_init_times
from pipeline.weather.forecasting.model import load_forecaster
from pipeline.weather.forecasting.rollout import Forecaster, rollout

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
MAX_STEP = 1.5


class CalibrateConfig(StrictModel):
    """Options of the spread calibration (``velocast calibrate weather``)."""

    model: str = Field(description="run directory of a flow-matching weather model")
    data: str = Field(description="store with the validation analyses (and their truth)")
    init_times: list[str] = Field(description="validation init times (ISO times or START/END/STEP)")
    members: int = Field(10, ge=2)
    lead_hours: float = Field(120.0, description="longest lead scored")
    min_lead_hours: float = Field(24.0, description="shortest lead scored")
    sampler: str | None = None
    sampler_steps: int | None = Field(None, ge=1)
    noise_memories: list[float] = Field([0.0, 0.25, 0.5, 0.75], description="ρ values tried")
    iterations: int = Field(2, ge=1, description="rollouts per ρ (each refines λ)")
    seed: int = 0
    batch_size: int = 64


def validation_ssr(forecaster: Forecaster, truth: xr.Dataset, init_times: pd.DatetimeIndex, *, n_steps: int,
                   config: CalibrateConfig, noise_scale: float, noise_memory: float, sampler: str,
                   sampler_steps: int) -> np.ndarray:
    """Spread/skill ratio per lead of one rollout, averaged over channels."""
    result = rollout(forecaster, history=initial_history(forecaster, truth, init_times), init_times=init_times,
                     n_steps=n_steps, members=config.members, sampler=sampler, sampler_steps=sampler_steps,
                     seed=config.seed, batch_size=config.batch_size, noise_scale=noise_scale,
                     noise_memory=noise_memory)
    valid = init_times.values[:, None] + result.lead_times.values[None, :]
    target = stack_channels(truth.sel(time=valid.ravel()), forecaster.channels)
    target = target.reshape(len(init_times), n_steps, *target.shape[1:])  # (init, lead, C, H, W)
    ratios = [channel_scores(result.states[:, :, :, c], target[:, :, c], forecaster.latitude)["ssr"]
              for c in range(len(forecaster.channels))]
    return np.mean(ratios, axis=0)


def fit_noise_scale(measure: Callable[[float], tuple[float, np.ndarray]], *, start: float,
                    iterations: int) -> list[tuple[float, float, np.ndarray]]:
    """Iterate λ towards mean SSR = 1 (see module); ``measure(λ)`` → (mean SSR, SSR per lead). Returns
    every (λ, mean SSR, SSR per lead) tried."""
    tried: list[tuple[float, float, np.ndarray]] = []
    scale = start
    for _ in range(iterations):
        mean, by_lead = measure(scale)
        tried.append((scale, mean, by_lead))
        if len(tried) >= 2 and abs(np.log(tried[-1][1]) - np.log(tried[-2][1])) > 1e-3:
            (l0, s0, _), (l1, s1, _) = tried[-2], tried[-1]
            slope = (np.log(s1) - np.log(s0)) / (np.log(l1) - np.log(l0))
            scale = float(np.exp(np.log(l1) - np.log(s1) / max(slope, 0.2)))
        else:
            scale = scale / mean
        # a flat or noisy response must not throw λ far away: at most ×/÷ 1.5 per rollout
        scale = float(np.clip(scale, tried[-1][0] / MAX_STEP, tried[-1][0] * MAX_STEP))
    return tried


def calibrate_spread(config: CalibrateConfig) -> dict:
    """Fit λ and ρ (see module doc); write and return ``{"noise_scale", "noise_memory", "history", ...}``."""
    from pipeline.weather.store import open_training_store

    forecaster, _ = load_forecaster(config.model)
    if forecaster.deterministic:
        raise ValueError("a deterministic (mse) model has no noise to scale; calibrate a flow-matching model")
    if not config.noise_memories or not all(0 <= rho < 1 for rho in config.noise_memories):
        raise ValueError(f"noise memories must lie in [0, 1), got {config.noise_memories}")
    sampler, sampler_steps = recorded_sampler(forecaster.metadata, config.sampler, config.sampler_steps)
    truth = open_training_store(config.data)
    init_times = parse_init_times(config.init_times)
    n_steps = round(pd.Timedelta(hours=config.lead_hours) / forecaster.step)
    leads_h = np.arange(1, n_steps + 1) * forecaster.step / pd.Timedelta(hours=1)
    scored = np.flatnonzero(leads_h >= config.min_lead_hours)
    if n_steps < 1 or scored.size == 0:
        raise ValueError(f"no lead between {config.min_lead_hours} h and {config.lead_hours} h to score")
    last_needed = init_times[-1] + n_steps * forecaster.step
    if last_needed > pd.Timestamp(truth["time"].values[-1]):
        raise ValueError(f"the data end before {last_needed}, the last validation time needed")
    history: list[dict] = []
    scale = 1.0
    for rho in sorted(config.noise_memories):
        def measure(lam: float, rho: float = rho) -> tuple[float, np.ndarray]:
            by_lead = validation_ssr(forecaster, truth, init_times, n_steps=n_steps, config=config,
                                     noise_scale=lam, noise_memory=rho, sampler=sampler,
                                     sampler_steps=sampler_steps)[scored]
            log.info("λ %.3f, ρ %.2f: validation spread/skill %.3f (%.3f … %.3f over the leads)",
                     lam, rho, by_lead.mean(), by_lead.min(), by_lead.max())
            return float(by_lead.mean()), by_lead

        for lam, mean, by_lead in fit_noise_scale(measure, start=scale, iterations=config.iterations):
            history.append({"noise_scale": lam, "noise_memory": rho, "ssr": mean,
                            "ssr_by_lead": [round(float(v), 4) for v in by_lead],
                            "max_abs_log_ssr": float(np.max(np.abs(np.log(by_lead))))})
        # more memory needs less size: the next ρ starts from the best λ so far
        scale = min(history, key=lambda h: h["max_abs_log_ssr"])["noise_scale"]
    best = min(history, key=lambda h: h["max_abs_log_ssr"])
    record = {
        "noise_scale": best["noise_scale"],
        "noise_memory": best["noise_memory"],
        "validation_ssr": best["ssr"],
        "validation_ssr_by_lead": best["ssr_by_lead"],
        "history": history,
        "init_times": [t.isoformat() for t in init_times],
        "members": config.members,
        "leads_hours": [float(leads_h[i]) for i in scored],
        "sampler": sampler,
        "sampler_steps": sampler_steps,
    }
    Path(config.model, CALIBRATION_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def recorded_noise(model: str | Path, checkpoint_dir: str | Path) -> tuple[float, float]:
    """The calibrated (λ, ρ) of a run (``RUN/calibration.json`` beside its checkpoints), else (1, 0)."""
    for folder in (Path(model), Path(checkpoint_dir).parent.parent):
        path = folder / CALIBRATION_FILE
        if path.is_file():
            record = json.loads(path.read_text())
            return float(record["noise_scale"]), float(record.get("noise_memory", 0.0))
    return 1.0, 0.0
