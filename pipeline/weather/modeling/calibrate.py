"""Spread calibration: the sampler noise's size λ and memory ρ, fitted on the validation period.

A flow-matching ensemble trained for minutes is mis-dispersed in two ways: too much spread after one
step, and errors that grow faster than the spread over the following days (the model's own errors
persist from step to step, while fresh noise at every step only adds up like a random walk). Two knobs
act on the sampler noise of every forecast step, ``x₀ = λ·ε_k``:

* λ (``noise_scale``) sizes it, as the inflation factor of ensemble data assimilation does;
* ρ (``noise_memory``) correlates it between consecutive steps of a member, ``ε_k = ρ·ε_{k-1} +
  √(1-ρ²)·η_k`` (AR(1); every ``ε_k`` is still N(0, I)), as the AR(1) random patterns of stochastic
  physics do (ECMWF's SPPT): a member's deviations then persist, and its spread grows like the error.

Both are fitted on validation init times — never the test period — as *the sharpest ensemble that is
calibrated* (Gneiting's paradigm), in three steps:

1. **CRPS grid.** One rollout per (λ, ρ) of the grids ``noise_scales`` × ``noise_memories``; the pair with
   the lowest fair CRPS (each channel divided by its climatological std, averaged over channels and the
   leads in ``[min_lead, lead]``) wins. The CRPS, a proper score, is the robust guide: the spread/skill
   ratio is not monotonic in λ (too much noise also degrades the ensemble mean, so error grows with
   spread), so iterating λ on the ratio alone can walk away from the good region.
2. **λ per variable.** Variables differ in how much noise suits them. For each variable, λ goes to the
   minimum of *its own* CRPS over the grid (at the winning ρ): a parabola in log λ through its best grid
   point and the two neighbours, or the grid's edge when that is its best. One more rollout measures
   the per-variable λ together (the noise of one variable also moves the others through the dynamics);
   it is kept when its CRPS is lower than the grid's best.
3. **Spread factors** (post-processing). The noise acts at every step, so one λ cannot give the right
   spread at every lead: with the CRPS-best λ the ensemble is still too wide on day 1 for some variables
   and too narrow later for others. On the chosen rollout, each channel's members are scaled about the
   ensemble mean, ``x̄ + α·(x_m − x̄)``, with ``α = 1 / SSR`` at each lead (the spread/skill ratio is
   linear in α and the mean does not move, so this makes the validation ratio 1); ``log α`` is then
   smoothed as a quadratic in ``log lead`` (4 validation cases give noisy per-lead ratios) and clipped
   to [0.5, 1.5]. Not the CRPS-minimising α: members rescaled about their own mean are no longer
   exchangeable draws, and the fair CRPS then rewards too much spread at small M (synthetic Gaussian
   ensembles of 8 members: CRPS-best α 2.5 where SSR = 1 needs 1.9). The forecast applies α to what it
   stores, never to the states it steps from, so the rollout's dynamics stay the calibrated ones; leads
   past the last validation lead keep its α. ``velocast forecast weather --raw-spread`` skips it.
The result is written to ``RUN/calibration.json``; ``velocast forecast weather`` uses it unless
``--noise-scale`` / ``--noise-memory`` are given.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from models.distillation import recorded_sampler
from pipeline.config import StrictModel
from pipeline.console import make_progress
from pipeline.evaluation.ensemble import channel_scores
from pipeline.provenance import file_sha256
from pipeline.weather.modeling.data import parse_init_times, stack_channels
from pipeline.weather.modeling.model import load_forecaster
from pipeline.weather.modeling.rollout import NoiseScale, describe_noise_scale, initial_history, rollout, scale_spread

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"


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
    noise_scales: list[float] = Field([0.45, 0.6, 0.8], description="λ values of the CRPS grid")
    noise_memories: list[float] = Field([0.6], description="ρ values of the CRPS grid")
    per_variable: bool = Field(True, description="λ per variable at each variable's own CRPS minimum (one more rollout)")
    spread_factors: bool = Field(True, description="fit the spread factor α per channel and lead (no extra rollout)")
    extend_grid: int = Field(3, ge=0, description="when the CRPS minimum lies at an edge of the λ grid, try up to "
                                                  "this many λ beyond it (× or ÷ 1.5 each), while the CRPS falls")
    seed: int = 0
    batch_size: int = 64


@dataclass(frozen=True)
class ValidationScores:
    """One validation rollout: ``crps`` the mean normalised fair CRPS, ``crps_by_variable`` the same per
    variable (over its channels); ``ssr`` the spread/skill ratio ``(variables, leads)``."""

    crps: float
    crps_by_variable: np.ndarray
    ssr: np.ndarray


class ValidationRollouts:
    """Rolls a model out from validation init times and scores it against the truth (scored leads only)."""

    def __init__(self, config: CalibrateConfig) -> None:
        from pipeline.weather.store import open_training_store

        self.config = config
        self.forecaster, self.checkpoint_dir = load_forecaster(config.model)
        if self.forecaster.deterministic:
            raise ValueError("a deterministic (mse) model has no noise to scale; calibrate a flow-matching model")
        self.sampler, self.sampler_steps = recorded_sampler(self.forecaster.metadata, config.sampler,
                                                            config.sampler_steps)
        truth = open_training_store(config.data)
        self.init_times = parse_init_times(config.init_times)
        step = self.forecaster.step
        self.n_steps = round(pd.Timedelta(hours=config.lead_hours) / step)
        leads_h = np.arange(1, self.n_steps + 1) * step / pd.Timedelta(hours=1)
        self.scored = np.flatnonzero(leads_h >= config.min_lead_hours)
        if self.n_steps < 1 or self.scored.size == 0:
            raise ValueError(f"no lead between {config.min_lead_hours} h and {config.lead_hours} h to score")
        self.leads_hours = [float(leads_h[i]) for i in self.scored]
        last_needed = self.init_times[-1] + self.n_steps * step
        if last_needed > pd.Timestamp(truth["time"].values[-1]):
            raise ValueError(f"the data end before {last_needed}, the last validation time needed")
        self.history = initial_history(self.forecaster, truth, self.init_times)
        leads = pd.TimedeltaIndex([step * (k + 1) for k in range(self.n_steps)])
        valid = self.init_times.values[:, None] + leads.values[None, :]
        target = stack_channels(truth.sel(time=valid.ravel()), self.forecaster.channels)
        self.target = target.reshape(len(self.init_times), self.n_steps, *target.shape[1:])  # (init, lead, C, H, W)
        channels = self.forecaster.channels
        self.variables = list(dict.fromkeys(c.variable for c in channels))
        self.group_of = np.array([self.variables.index(c.variable) for c in channels])

    def rollout(self, noise_scale: NoiseScale, noise_memory: float) -> np.ndarray:
        """The validation forecasts ``(init, lead, member, C, H, W)`` in physical units."""
        return rollout(self.forecaster, history=self.history, init_times=self.init_times, n_steps=self.n_steps,
                       members=self.config.members, sampler=self.sampler, sampler_steps=self.sampler_steps,
                       seed=self.config.seed, batch_size=self.config.batch_size, noise_scale=noise_scale,
                       noise_memory=noise_memory).states

    def score(self, states: np.ndarray) -> ValidationScores:
        """Scores of validation forecasts (see :class:`ValidationScores`), over the scored leads."""
        forecaster = self.forecaster
        crps, ssr = [], []
        for c in range(len(forecaster.channels)):
            scores = channel_scores(states[:, :, :, c], self.target[:, :, c], forecaster.latitude)
            crps.append(scores["crps"][self.scored].mean() / forecaster.normalisation.std[c])
            ssr.append(scores["ssr"][self.scored])
        ssr_array, crps_array = np.asarray(ssr), np.asarray(crps)
        groups = range(len(self.variables))
        by_variable = np.stack([ssr_array[self.group_of == g].mean(axis=0) for g in groups])
        crps_by_variable = np.array([crps_array[self.group_of == g].mean() for g in groups])
        return ValidationScores(crps=float(crps_array.mean()), crps_by_variable=crps_by_variable, ssr=by_variable)


def per_variable_minima(scales: Sequence[float], crps: np.ndarray) -> np.ndarray:
    """λ per variable at the minimum of its CRPS ``crps[grid point, variable]`` over the grid ``scales``
    (ascending): the vertex of the parabola in log λ through its best point and both neighbours, or the
    best point itself at the grid's edge (see module doc)."""
    log_lam = np.log(np.asarray(scales, dtype=float))
    out = np.empty(crps.shape[1])
    for v in range(crps.shape[1]):
        i = int(np.argmin(crps[:, v]))
        if i == 0 or i == len(scales) - 1:
            out[v] = log_lam[i]
            continue
        x, y = log_lam[i - 1:i + 2], crps[i - 1:i + 2, v]
        a, b, _ = np.polyfit(x, y, 2)  # a > 0: the middle point is the lowest of the three
        out[v] = np.clip(-b / (2 * a), x[0], x[2]) if a > 0 else x[1]
    return np.exp(out)


SPREAD_FACTOR_RANGE = (0.5, 1.5)


def fit_spread_factors(states: np.ndarray, target: np.ndarray, latitude: np.ndarray,
                       leads_hours: np.ndarray) -> np.ndarray:
    """Spread factors ``(lead, C)``: per channel ``log(1 / SSR)`` at each lead, least-squares quadratic in
    ``log lead`` (linear for 2–3 leads, constant for one), clipped to :data:`SPREAD_FACTOR_RANGE`."""
    log_lead = np.log(np.asarray(leads_hours, dtype=float))
    degree = 2 if len(log_lead) >= 4 else len(log_lead) - 1
    out = np.empty((states.shape[1], states.shape[3]))
    for c in range(states.shape[3]):
        log_alpha = -np.log(channel_scores(states[:, :, :, c], target[:, :, c], latitude)["ssr"])
        smooth = np.polyval(np.polyfit(log_lead, log_alpha, degree), log_lead)
        out[:, c] = np.clip(np.exp(smooth), *SPREAD_FACTOR_RANGE)
    return out


def record_spread_factors(record: dict | None, channels: Sequence, step: pd.Timedelta) -> np.ndarray | None:
    """The spread factors ``(lead, C)`` of a calibration record for a model's channels and step, or None
    when the record has none. ValueError when they were fitted for other channels or another step."""
    block = (record or {}).get("spread_factors")
    if not block:
        return None
    leads = np.asarray(block["leads_hours"], dtype=float)
    expected = np.arange(1, len(leads) + 1) * (step / pd.Timedelta(hours=1))
    missing = [c.name for c in channels if c.name not in block["channels"]]
    if missing or not np.allclose(leads, expected):
        raise ValueError(f"the calibration's spread factors do not fit this model (channels {missing or 'ok'}, "
                         f"leads {leads[:3].tolist()}… h for a {step} step); recalibrate with `velocast calibrate "
                         "weather` or forecast with --raw-spread")
    return np.stack([np.asarray(block["channels"][c.name], dtype=float) for c in channels], axis=1)


def calibrate_spread(config: CalibrateConfig, *, progress: bool = True) -> dict:
    """Fit λ (per variable) and ρ (see module doc); write and return ``{"noise_scale", "noise_memory",
    "history", ...}``. ``progress``: a bar over the validation rollouts."""
    bar = make_progress(enabled=progress)
    bar.start()
    try:
        return _calibrate(config, bar)
    finally:
        bar.stop()


def _calibrate(config: CalibrateConfig, bar: Any) -> dict:
    scales = sorted(config.noise_scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"noise scales must be positive, got {config.noise_scales}")
    if not config.noise_memories or not all(0 <= rho < 1 for rho in config.noise_memories):
        raise ValueError(f"noise memories must lie in [0, 1), got {config.noise_memories}")
    runs = ValidationRollouts(config)
    variables = runs.variables
    history: list[dict] = []

    best: dict = {"crps": np.inf, "states": None}
    planned = {"n": len(scales) * len(config.noise_memories) + (config.per_variable and len(scales) > 1)}
    task = bar.add_task("calibrate", total=planned["n"])

    def measure(scale: NoiseScale, rho: float) -> ValidationScores:
        if len(history) >= planned["n"]:  # a step beyond the grid's edge
            planned["n"] += 1
            bar.update(task, total=planned["n"])
        states = runs.rollout(scale, rho)
        result = runs.score(states)
        if result.crps < best["crps"]:  # keep only the best rollout's states (the spread factors' data)
            best.update(crps=result.crps, states=states)
        log.info("λ %s, ρ %.2f: validation CRPS %.5f, spread/skill %s", describe_noise_scale(scale), rho, result.crps,
                 " ".join(f"{v} {x:.3f}" for v, x in zip(variables, result.ssr.mean(axis=1))))
        history.append({"noise_scale": scale, "noise_memory": rho, "crps": result.crps,
                        "crps_by_variable": {v: round(float(x), 6) for v, x in zip(variables, result.crps_by_variable)},
                        "ssr": float(result.ssr.mean()),
                        "ssr_by_lead": {v: [round(float(x), 4) for x in row] for v, row in zip(variables, result.ssr)},
                        "max_abs_log_ssr": float(np.max(np.abs(np.log(result.ssr))))})
        bar.update(task, completed=len(history))
        return result

    grid = {(lam, rho): measure(lam, rho) for rho in sorted(config.noise_memories) for lam in scales}
    best_lam, best_rho = min(grid, key=lambda key: grid[key].crps)
    for _ in range(config.extend_grid if len(scales) > 1 else 0):
        # a minimum at an edge of the grid is not a minimum yet: step beyond it while the CRPS falls
        measured = sorted(lam for lam, rho in grid if rho == best_rho)
        if best_lam not in (measured[0], measured[-1]):
            break
        factor = 1.5 if best_lam == measured[-1] else 1 / 1.5
        beyond = round(best_lam * factor, 4)
        grid[(beyond, best_rho)] = measure(beyond, best_rho)
        scales = sorted({*scales, beyond})
        if grid[(beyond, best_rho)].crps >= grid[(best_lam, best_rho)].crps:
            break
        best_lam = beyond
    chosen = next(h for h in history if h["noise_scale"] == best_lam and h["noise_memory"] == best_rho)
    if config.per_variable and len(scales) > 1:
        refined = per_variable_minima(scales, np.stack([grid[(lam, best_rho)].crps_by_variable for lam in scales]))
        if not np.allclose(refined, best_lam, rtol=1e-3):
            measure({v: round(float(x), 4) for v, x in zip(variables, refined)}, best_rho)
            if history[-1]["crps"] < chosen["crps"]:
                chosen = history[-1]
    bar.update(task, total=len(history), completed=len(history))
    record = {
        "noise_scale": chosen["noise_scale"],
        "noise_memory": chosen["noise_memory"],
        "validation_crps": chosen["crps"],
        "validation_ssr": chosen["ssr"],
        "validation_ssr_by_lead": chosen["ssr_by_lead"],
        "history": history,
        "init_times": [t.isoformat() for t in runs.init_times],
        "members": config.members,
        "noise_scales": sorted(config.noise_scales),
        "noise_scales_tried": scales,
        "per_variable": config.per_variable,
        "leads_hours": runs.leads_hours,
        "sampler": runs.sampler,
        "sampler_steps": runs.sampler_steps,
        "checkpoint": f"sha256:{file_sha256(Path(runs.checkpoint_dir) / 'weights.safetensors')}",
    }
    if config.spread_factors:
        states = best["states"]  # the chosen rollout: the lowest CRPS of all measured
        step_hours = runs.forecaster.step / pd.Timedelta(hours=1)
        all_leads = np.arange(1, runs.n_steps + 1) * step_hours
        factors = fit_spread_factors(states, runs.target, runs.forecaster.latitude, all_leads)
        scaled = runs.score(scale_spread(states, factors))
        log.info("spread factors: validation CRPS %.5f -> %.5f, spread/skill %s", chosen["crps"], scaled.crps,
                 " ".join(f"{v} {x:.3f}" for v, x in zip(variables, scaled.ssr.mean(axis=1))))
        record["spread_factors"] = {
            "leads_hours": all_leads.tolist(),
            "channels": {c.name: [round(float(a), 4) for a in factors[:, i]]
                         for i, c in enumerate(runs.forecaster.channels)},
            "validation_crps": scaled.crps,
            "validation_ssr": float(scaled.ssr.mean()),
            "validation_ssr_by_lead": {v: [round(float(x), 4) for x in row] for v, row in zip(variables, scaled.ssr)},
        }
    Path(config.model, CALIBRATION_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def calibration_record(model: str | Path, checkpoint_dir: str | Path) -> dict | None:
    """A run's ``calibration.json`` (beside the run's checkpoints), or None."""
    for folder in (Path(model), Path(checkpoint_dir).parent.parent):
        path = folder / CALIBRATION_FILE
        if path.is_file():
            return json.loads(path.read_text())
    return None


def record_noise(record: dict | None) -> tuple[NoiseScale, float]:
    """(λ, ρ) of a calibration record, or (1, 0) without one."""
    if record is None:
        return 1.0, 0.0
    scale = record["noise_scale"]
    scale = {k: float(v) for k, v in scale.items()} if isinstance(scale, dict) else float(scale)
    return scale, float(record.get("noise_memory", 0.0))


def recorded_noise(model: str | Path, checkpoint_dir: str | Path) -> tuple[NoiseScale, float]:
    """The calibrated (λ, ρ) of a run (``RUN/calibration.json`` beside its checkpoints), else (1, 0)."""
    return record_noise(calibration_record(model, checkpoint_dir))
