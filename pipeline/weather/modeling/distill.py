"""``velocast distill weather``: a few-step student of a trained weather model by reflow or crps.

``--method crps`` fine-tunes the teacher's network on the same training windows with the fair CRPS of
``members`` one- (or K-) step samples per window against the true next state (see
:mod:`models.distillation`); the rest of this docstring describes reflow, whose data are teacher samples.

The teacher's training windows (same store, same time split, the teacher's normalisation) give the
conditions; the teacher's ODE (``teacher_sampler`` × ``teacher_steps``) maps fresh noise to residuals under
each condition; the student — the teacher's network, initialised from its EMA weights — is fine-tuned with
flow matching on those straight couplings (:mod:`models.distillation`). The student's run directory holds
an ordinary weather checkpoint (same metadata as the teacher's, objective ``fm``) plus
``sampler="euler"`` and ``sampler_steps=K``, so ``load_forecaster`` and ``velocast forecast weather``
use it unchanged and default to K Euler steps (K network calls per forecast step).

A spread-calibrated teacher (``RUN/calibration.json``, see :mod:`pipeline.weather.modeling.calibrate`)
samples from ``λ·z`` with λ per channel; its couplings start from that scaled noise, so the student
learns the teacher's calibrated map and is sampled from the same noise: the student's run gets a
``calibration.json`` with the teacher's λ and memory ρ (``noise_scale`` / ``noise_memory`` override both).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from pydantic import Field

from models.distillation import ReflowConfig
from pipeline.config import StrictModel
from pipeline.weather.modeling.rollout import NoiseScale

log = logging.getLogger(__name__)


class DistillWeatherConfig(StrictModel):
    """Options of ``velocast distill weather`` (``reflow`` holds the distillation hyper-parameters)."""

    model: str = Field(description="teacher run directory (newest checkpoint) or checkpoint directory")
    data: str | None = Field(None, description="training store (default: the one the teacher was trained on)")
    noise_scale: NoiseScale | None = Field(
        None, description="teacher's sampler noise size λ, one value or per variable/channel "
                          "(default: the teacher's calibration.json, else 1)")
    noise_memory: float | None = Field(None, ge=0, lt=1, description="noise memory ρ handed to the student's "
                                                                      "calibration.json (default: the teacher's)")
    reflow: ReflowConfig = Field(
        ReflowConfig(student_steps=4, pairs=512, pair_batch_size=32, steps=400, batch_size=8, lr=2e-4, warmup_steps=10,
                     ema_decay=0.98),
        description="the distillation, sized for the weather model on a CPU: K = student_steps Euler steps (network "
                    "calls per forecast step), teacher (noise, residual) pairs, student optimisation steps")


def _teacher_split(run: Path) -> tuple[str | None, float, list[str] | None]:
    """The teacher's ``train_end``, ``validation_fraction`` and ``variables`` from its train_config.json."""
    cfg_path = run / "train_config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        return cfg.get("train_end"), float(cfg.get("validation_fraction", 0.1)), cfg.get("variables")
    return None, 0.1, None


def distill_weather(config: DistillWeatherConfig, *, out: str | Path, progress: bool = True) -> dict:
    """Distil the teacher into ``out`` (written beside, then renamed into place). Returns a summary."""
    import torch

    from models.training.checkpoint import load_checkpoint
    from pipeline.distillation import check_new_run_dir, distill_run
    from pipeline.weather.modeling.calibrate import CALIBRATION_FILE, recorded_noise
    from pipeline.weather.modeling.data import WeatherWindows
    from pipeline.weather.modeling.model import load_forecaster
    from pipeline.weather.modeling.rollout import channel_noise_scales
    from pipeline.weather.modeling.train import split_times
    from pipeline.weather.store import open_training_store

    out = check_new_run_dir(out)
    forecaster, ckpt_dir = load_forecaster(config.model)
    if forecaster.deterministic:
        raise ValueError(f"{config.model} is a deterministic (mse) model; only a generative model can be distilled")
    teacher_meta = dict(load_checkpoint(ckpt_dir).extra)
    data = config.data or teacher_meta.get("data")
    if not data:
        raise ValueError("the teacher records no training store; pass --data")
    run_root = Path(config.model) if (Path(config.model) / "checkpoints").is_dir() else Path(ckpt_dir).parent.parent
    train_end, fraction, _ = _teacher_split(run_root)
    store = open_training_store(data)
    times = pd.DatetimeIndex(store["time"].values)
    last_train = split_times(times, train_end=train_end, fraction=fraction)
    windows = WeatherWindows.from_dataset(store.sel(time=slice(None, last_train)), forecaster.channels,
                                          step=forecaster.step, normalisation=forecaster.normalisation,
                                          forcings=forecaster.forcings)
    recorded_scale, recorded_memory = recorded_noise(config.model, ckpt_dir)
    noise_scale = recorded_scale if config.noise_scale is None else config.noise_scale
    noise_memory = recorded_memory if config.noise_memory is None else config.noise_memory
    scales = torch.from_numpy(channel_noise_scales(forecaster.channels, noise_scale)).float().reshape(-1, 1, 1)
    reflow = config.reflow
    source = windows.source(batch_size=min(reflow.pair_batch_size, len(windows.starts)), seed=reflow.seed)
    if reflow.method == "reflow":
        log.info("distilling %s by reflow: %d pairs from %d windows, teacher %s x%d from noise λ %s, student euler x%d",
                 config.model, reflow.pairs, len(windows.starts), reflow.teacher_sampler, reflow.teacher_steps,
                 noise_scale, reflow.student_steps)
    else:
        log.info("distilling %s by crps: %d members per window of %d, from noise λ %s, student euler x%d",
                 config.model, reflow.members, len(windows.starts), noise_scale, reflow.student_steps)
    calibration = {"noise_scale": noise_scale, "noise_memory": noise_memory,
                   "source": f"the teacher's noise ({config.model}); the student was distilled from it"}

    train_config = {"data": data, "train_end": str(last_train), "validation_fraction": fraction}
    result = distill_run(out=out, teacher=forecaster.net, teacher_objective=forecaster.objective,
                         teacher_checkpoint=ckpt_dir, teacher_model=config.model, metadata=teacher_meta,
                         source=source, config=reflow, noise_scale=scales, progress=progress,
                         files={"distill_config.json": config.model_dump_json(indent=1),
                                "train_config.json": json.dumps(train_config, indent=1),
                                CALIBRATION_FILE: json.dumps(calibration, indent=1)})
    couplings = result.couplings
    return {"out": str(out), "method": reflow.method, "pairs": len(couplings) if couplings is not None else 0,
            "teacher_nfe": couplings.nfe if couplings is not None else None, "steps": int(result.metrics["step"]),
            "student_steps": reflow.student_steps, "loss": result.metrics.get("loss"),
            "seconds": result.metrics.get("seconds"), "noise_scale": noise_scale, "noise_memory": noise_memory}
