"""``velocast forecast weather``: ensemble rollouts committed to an Icechunk forecast store.

Each init time needs the truth at ``init - step`` and ``init`` (the two conditioning states). Init times
are rolled out in chunks with all members batched; every init time is then one atomic commit with
provenance (source, config, code version, checkpoint hash, data fingerprint). Re-running an init time that
the store already has is a no-op (``on_exists="skip"``). A member's noise depends on ``(seed, init time,
member)`` only, so a resumed or re-ordered run writes the same members; a cycle with a non-finite value
is never committed, and the store is created with its first committed cycle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from models.distillation import recorded_sampler
from pipeline.config import StrictModel
from pipeline.console import make_progress
from pipeline.errors import UserError
from pipeline.forecast_store.store import store_errors
from pipeline.provenance import file_sha256, is_simulated
from pipeline.weather.modeling.data import parse_init_times, parse_lead
from pipeline.weather.modeling.model import load_forecaster
from pipeline.weather.modeling.rollout import (
    NoiseScale,
    channel_noise_scales,
    check_can_start,
    forecast_dataset,
    initial_history,
    rollout,
    scale_spread,
)
from pipeline.weather.store import data_fingerprint

log = logging.getLogger(__name__)


class ForecastConfig(StrictModel):
    """Options of ``velocast forecast weather``."""

    model: str = Field(description="run directory (newest checkpoint) or checkpoint directory")
    data: str = Field(description="store with the analyses the forecasts start from (and the truth)")
    init_times: list[str] = Field(description="ISO times, or START/END/STEP ranges such as 2001-01-01/2001-01-20/24h")
    members: int = Field(10, ge=1)
    lead: str = Field("10d", description="forecast length, e.g. 5d or 120h (a multiple of the model step)")
    sampler: str | None = Field(None, description="default: the model's own (a distilled student's), else heun")
    sampler_steps: int | None = Field(None, ge=1, description="default: the model's own, else 8")
    guidance: float | None = None
    noise_scale: NoiseScale | None = Field(
        None, description="size λ of the sampler noise, one value or one per variable/channel; default: the "
                          "run's calibration.json, else 1"
    )
    noise_memory: float | None = Field(
        None, ge=0, lt=1, description="step-to-step correlation ρ of a member's sampler noise; default: the "
                                      "run's calibration.json, else 0"
    )
    spread_factors: bool = Field(
        True, description="scale the members about their mean by the run's calibrated factor per lead and channel "
                          "(calibration.json; only with the calibrated λ and ρ); False stores the raw rollout"
    )
    seed: int = 0
    batch_size: int = Field(64, ge=1, description="samples (init times × members) per network batch")
    device: str = "cpu"


@dataclass(frozen=True)
class ForecastSummary:
    """What a forecast run did: cycles written and skipped, network calls per step, seconds spent."""

    written: list[str]
    skipped: list[str]
    nfe_per_step: int
    seconds: float
    members: int
    lead_steps: int


def forecast_weather(config: ForecastConfig, *, out: str | Path, progress: bool = True) -> ForecastSummary:
    """Roll out every init time and commit one cycle per init time to the forecast store ``out``."""
    import time

    from pipeline.forecast_store import ForecastStore
    from pipeline.weather.store import open_training_store

    forecaster, ckpt_dir = load_forecaster(config.model)
    sampler, sampler_steps = recorded_sampler(forecaster.metadata, config.sampler, config.sampler_steps)
    from pipeline.weather.modeling.calibrate import calibration_record, record_noise, record_spread_factors

    calibrated = calibration_record(config.model, ckpt_dir) or {}
    recorded_scale, recorded_memory = record_noise(calibrated or None)
    if config.noise_scale is None and calibrated.get("sampler") and \
            (calibrated["sampler"], calibrated.get("sampler_steps")) != (sampler, sampler_steps):
        log.warning("the noise of %s was calibrated for %s x%s, this forecast samples with %s x%s; the spread may "
                    "differ (recalibrate: velocast calibrate weather --sampler %s --steps %s)", config.model,
                    calibrated["sampler"], calibrated.get("sampler_steps"), sampler, sampler_steps, sampler,
                    sampler_steps)
    noise_scale = config.noise_scale or recorded_scale
    noise_memory = recorded_memory if config.noise_memory is None else config.noise_memory
    factors = None
    if config.spread_factors and not forecaster.deterministic:
        factors = record_spread_factors(calibrated, forecaster.channels, forecaster.step)
        if factors is not None and (noise_scale, noise_memory) != (recorded_scale, recorded_memory):
            log.info("the calibrated spread factors belong to the calibrated noise; with λ %s, ρ %s they are not "
                     "applied", noise_scale, noise_memory)
            factors = None
    config = config.model_copy(update={"sampler": sampler, "sampler_steps": sampler_steps, "noise_scale": noise_scale,
                                       "noise_memory": noise_memory})
    truth = open_training_store(config.data)
    init_times = parse_init_times(config.init_times)
    n_steps = parse_lead(config.lead, forecaster.step)
    members = 1 if forecaster.deterministic else config.members
    check_can_start(forecaster, truth, init_times)  # before the store exists: a bad request leaves nothing
    channel_noise_scales(forecaster.channels, noise_scale)  # a λ for an unknown variable, likewise
    existing = Path(out).exists() or "://" in str(out)
    store = ForecastStore.open(out) if existing else None  # created with the first cycle that is committed
    done = {pd.Timestamp(t) for t in store.init_times()} if store is not None else set()
    todo = pd.DatetimeIndex([t for t in init_times if t not in done])
    skipped = [t.isoformat() for t in init_times if t in done]
    provenance = {
        "source": "velocast forecast weather",
        "config": config.model_dump(mode="json"),
        "checkpoint": f"sha256:{file_sha256(Path(ckpt_dir) / 'weights.safetensors')}",
        "data_snapshot": data_fingerprint(truth, config.data),
        "model_objective": forecaster.metadata.get("objective"),
        "checkpoint_step": forecaster.metadata.get("checkpoint_step"),
        "spread_factors_applied": factors is not None,
    }
    written: list[str] = []
    started = time.monotonic()
    nfe = 0
    per_chunk = max(1, config.batch_size // members)
    with make_progress(enabled=progress) as bar:
        chunks = [todo[b : b + per_chunk] for b in range(0, len(todo), per_chunk)]
        total = sum(-(-len(c) * members // config.batch_size) for c in chunks) * n_steps
        task = bar.add_task("forecast", total=total)
        for chunk in chunks:
            history = initial_history(forecaster, truth, chunk)
            result = rollout(
                forecaster, history=history, init_times=chunk, n_steps=n_steps, members=members,
                sampler=config.sampler, sampler_steps=config.sampler_steps, guidance=config.guidance,
                seed=config.seed, batch_size=config.batch_size, device=config.device,
                noise_scale=noise_scale, noise_memory=noise_memory, on_step=lambda k: bar.advance(task, k),
            )
            nfe = result.nfe_per_step
            if factors is not None:
                result = replace(result, states=scale_spread(result.states, factors))
            dataset = forecast_dataset(result, forecaster, init_times=chunk,
                                       attrs={"simulated": is_simulated(truth.attrs)})
            for i, init in enumerate(chunk):
                bad = int(np.count_nonzero(~np.isfinite(result.states[i])))
                if bad:
                    raise UserError(f"the forecast from {init:%Y-%m-%dT%H:%M} has {bad} non-finite values (the model "
                                    f"diverged?); it was not committed ({len(written)} cycles were)",
                                    path=str(ckpt_dir))
                cycle = dataset.sel(init_time=[init.to_datetime64()])
                created = store is None
                try:
                    with store_errors(out, f"write the cycle {init:%Y-%m-%dT%H:%M}"):
                        if store is None:
                            store = ForecastStore.open_or_create(out)
                        store.append_cycle(
                            cycle, provenance={**provenance, "nfe_per_step": nfe}, on_exists="skip",
                            message=f"forecast cycle {init:%Y-%m-%dT%H} ({members} members, {config.sampler} "
                                    f"x{config.sampler_steps})")
                except BaseException:
                    if created and not written:
                        _remove_empty_store(out)  # a store this run created and could not fill: nothing stays
                    raise
                written.append(init.isoformat())
    seconds = time.monotonic() - started
    log.info("wrote %d cycles (%d skipped) in %.1f s", len(written), len(skipped), seconds)
    return ForecastSummary(written=written, skipped=skipped, nfe_per_step=nfe, seconds=seconds, members=members,
                           lead_steps=n_steps)


def _remove_empty_store(out: str | Path) -> None:
    """Delete a local forecast store that holds no cycle (created by a run whose first commit failed)."""
    import shutil

    path = Path(out)
    if "://" in str(out) or not path.is_dir():
        return
    try:
        from pipeline.forecast_store import ForecastStore

        if ForecastStore.open(path).init_times():
            return
    except UserError:
        pass
    shutil.rmtree(path, ignore_errors=True)
