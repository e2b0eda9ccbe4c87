"""Spread calibration: one noise-inflation factor fitted on the validation period.

A flow-matching ensemble trained for minutes is under-dispersive at long leads: its errors grow faster
than its spread. As with the inflation factor of ensemble data assimilation, or GenCast's noise
inflation in its sampler, the initial noise of every sampler call is scaled by ``λ``
(``x₀ ~ N(0, λ² I)``), and ``λ`` is fitted on validation init times — never the test period — so that
the spread/skill ratio, averaged over channels and the leads in ``[min_lead, lead]``, is 1. Spread
should grow with ``λ`` while the ensemble-mean error barely moves (for the default run's model it grew
only weakly near 1: see the README), so ``λ ← λ / SSR(λ)`` is
iterated (a secant step on ``log λ`` after the first, each step at most a factor 1.5). The result is
written to ``RUN/calibration.json``;
``velocast forecast weather`` uses it unless ``--noise-scale`` is given.
"""

from __future__ import annotations

import json
import logging
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
    lead_hours: float = Field(72.0, description="longest lead scored")
    min_lead_hours: float = Field(24.0, description="shortest lead scored")
    sampler: str | None = None
    sampler_steps: int | None = Field(None, ge=1)
    iterations: int = Field(3, ge=1, description="rollouts (each one refines λ)")
    seed: int = 0
    batch_size: int = 64


def validation_ssr(forecaster: Forecaster, truth: xr.Dataset, init_times: pd.DatetimeIndex, *, n_steps: int,
                   scored: np.ndarray, config: CalibrateConfig, noise_scale: float, sampler: str,
                   sampler_steps: int) -> float:
    """Spread/skill ratio of one rollout, averaged over channels and the ``scored`` lead indices."""
    result = rollout(forecaster, history=initial_history(forecaster, truth, init_times), init_times=init_times,
                     n_steps=n_steps, members=config.members, sampler=sampler, sampler_steps=sampler_steps,
                     seed=config.seed, batch_size=config.batch_size, noise_scale=noise_scale)
    valid = init_times.values[:, None] + result.lead_times.values[None, :]
    target = stack_channels(truth.sel(time=valid.ravel()), forecaster.channels)
    target = target.reshape(len(init_times), n_steps, *target.shape[1:])  # (init, lead, C, H, W)
    ratios = []
    for c in range(len(forecaster.channels)):
        scores = channel_scores(result.states[:, :, :, c], target[:, :, c], forecaster.latitude)
        ratios.append(scores["ssr"][scored])
    return float(np.mean(ratios))


def calibrate_spread(config: CalibrateConfig) -> dict:
    """Fit λ (see module doc); write and return ``{"noise_scale", "history", ...}``."""
    from pipeline.weather.store import open_training_store

    forecaster, _ = load_forecaster(config.model)
    if forecaster.deterministic:
        raise ValueError("a deterministic (mse) model has no noise to scale; calibrate a flow-matching model")
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
    history: list[tuple[float, float]] = []
    scale = 1.0
    for _ in range(config.iterations):
        ssr = validation_ssr(forecaster, truth, init_times, n_steps=n_steps, scored=scored, config=config,
                             noise_scale=scale, sampler=sampler, sampler_steps=sampler_steps)
        history.append((scale, ssr))
        log.info("noise scale %.3f: validation spread/skill %.3f", scale, ssr)
        if len(history) >= 2 and abs(np.log(history[-1][1]) - np.log(history[-2][1])) > 1e-3:
            (l0, s0), (l1, s1) = history[-2], history[-1]
            slope = (np.log(s1) - np.log(s0)) / (np.log(l1) - np.log(l0))
            scale = float(np.exp(np.log(l1) - np.log(s1) / max(slope, 0.2)))
        else:
            scale = scale / ssr
        # a flat or noisy response must not throw λ far away: at most ×/÷ 1.5 per rollout
        scale = float(np.clip(scale, history[-1][0] / MAX_STEP, history[-1][0] * MAX_STEP))
    best = min(history, key=lambda item: abs(np.log(item[1])))
    record = {
        "noise_scale": best[0],
        "validation_ssr": best[1],
        "history": [{"noise_scale": s, "ssr": r} for s, r in history],
        "init_times": [t.isoformat() for t in init_times],
        "members": config.members,
        "leads_hours": [float(config.min_lead_hours), float(config.lead_hours)],
        "sampler": sampler,
        "sampler_steps": sampler_steps,
    }
    Path(config.model, CALIBRATION_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def recorded_noise_scale(model: str | Path, checkpoint_dir: str | Path) -> float:
    """The calibrated λ of a run (``RUN/calibration.json`` beside its checkpoints), else 1."""
    for folder in (Path(model), Path(checkpoint_dir).parent.parent):
        path = folder / CALIBRATION_FILE
        if path.is_file():
            return float(json.loads(path.read_text())["noise_scale"])
    return 1.0
