"""``velocast run protein``: simulate → ingest → train → sample → evaluate on alanine dipeptide.

Two independent MD data sets: the training MD (seed ``seed``) and the reference MD (seed ``seed + 1``),
each as parallel replicas on all cores. The ensemble model is trained on the training MD and sampled;
the forecast model is trained on the same MD and rolled out from a reference frame. Reports:

    DIR/metrics.json, DIR/report.md, DIR/*.png     ensemble evaluation (+ "forecast" metrics)
    DIR/report_ensemble/, DIR/report_forecast/      the two evaluations in full
    DIR/train.zarr, DIR/reference.zarr              ingested MD
    DIR/ensemble_model/, DIR/forecast_model/        runs (checkpoints, metrics.jsonl)
    DIR/samples/, DIR/forecast/                     structure stores + PDB/XTC/DCD exports
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from pydantic import Field

from models.training import TrainConfig
from pipeline.config import StrictModel
from pipeline.protein.modeling.commands import forecast_protein, sample_protein
from pipeline.protein.modeling.train import ProteinNetworkConfig, ProteinTrainConfig, train_protein

log = logging.getLogger(__name__)


class RunProteinConfig(StrictModel):
    """Sizes of the end-to-end run (defaults: ≤ 20 minutes on 2 CPU cores)."""

    seed: int = 0
    train_ns: float = Field(5.0, description="ns per training replica")
    train_replicas: int = 4
    reference_ns: float = Field(5.0, description="ns per reference replica")
    reference_replicas: int = 4
    save_every_ps: float = 1.0
    samples: int = 10000
    sampler: str = "heun"
    sampler_steps: int = 16
    lag_ps: float = 10.0
    forecast_steps: int = Field(500, description="lags per forecast trajectory")
    forecast_members: int = 8
    network: ProteinNetworkConfig = ProteinNetworkConfig()
    ensemble_train: TrainConfig = TrainConfig(steps=8000, batch_size=512, lr=1e-3, warmup_steps=200,
                                              ema_decay=0.999, log_every=100, checkpoint_every=1000,
                                              max_minutes=5.0)
    forecast_train: TrainConfig = TrainConfig(steps=6000, batch_size=512, lr=1e-3, warmup_steps=200,
                                              ema_decay=0.999, log_every=100, checkpoint_every=1000,
                                              max_minutes=2.0)

    @classmethod
    def quick(cls) -> RunProteinConfig:
        """The same path at toy sizes (≤ 3 minutes)."""
        small = ProteinNetworkConfig(hidden=64, depth=2, time_dim=32)
        return cls(
            train_ns=0.1, train_replicas=2, reference_ns=0.1, reference_replicas=2, samples=500, sampler_steps=4,
            lag_ps=2.0, forecast_steps=20, forecast_members=2, network=small,
            ensemble_train=TrainConfig(steps=60, batch_size=64, lr=1e-3, warmup_steps=5, log_every=20,
                                       checkpoint_every=60, max_minutes=0.5),
            forecast_train=TrainConfig(steps=60, batch_size=64, lr=1e-3, warmup_steps=5, log_every=20,
                                       checkpoint_every=60, max_minutes=0.5),
        )


def run_protein(config: RunProteinConfig, *, out: str | Path, progress: bool = True) -> dict:
    """Run every stage into ``out``; returns the ensemble metrics with the forecast metrics under "forecast"."""
    from pipeline.protein.ingest import ingest_protein
    from pipeline.protein.report import evaluate_protein
    from pipeline.protein.simulate import PeptideSimulation, builtin_source_string

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_config.json").write_text(config.model_dump_json(indent=1))
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = round(time.monotonic() - start, 1)

    for name, ns, replicas, seed in (("train", config.train_ns, config.train_replicas, config.seed),
                                     ("reference", config.reference_ns, config.reference_replicas, config.seed + 1)):
        start = time.monotonic()
        log.info("simulate + ingest the %s MD: %d x %g ns", name, replicas, ns)
        params = PeptideSimulation(ns=ns, seed=seed, replicas=replicas, save_every_ps=config.save_every_ps)
        ingest_protein(traj=[builtin_source_string(params)], out=out / f"{name}.zarr", progress=progress)
        timed(f"md_{name}", start)

    for task, train_config in (("ensemble", config.ensemble_train), ("forecast", config.forecast_train)):
        start = time.monotonic()
        log.info("train the %s model", task)
        train_protein(ProteinTrainConfig(data=str(out / "train.zarr"), task=task, lag_ps=config.lag_ps,
                                         network=config.network, train=train_config),
                      out=out / f"{task}_model", progress=progress)
        timed(f"train_{task}", start)

    start = time.monotonic()
    samples = sample_protein(model=out / "ensemble_model", n=config.samples, out=out / "samples",
                             sampler=config.sampler, steps=config.sampler_steps, seed=config.seed, progress=progress)
    timed("sample", start)
    start = time.monotonic()
    trajectories = forecast_protein(model=out / "forecast_model", start=f"{out / 'reference.zarr'}:0",
                                    steps=config.forecast_steps, members=config.forecast_members,
                                    out=out / "forecast", sampler=config.sampler, sampler_steps=config.sampler_steps,
                                    seed=config.seed, progress=progress)
    timed("forecast", start)

    start = time.monotonic()
    metrics = evaluate_protein(samples=samples, reference=out / "reference.zarr", training=out / "train.zarr",
                               out=out / "report_ensemble")
    forecast_metrics = evaluate_protein(samples=trajectories, reference=out / "reference.zarr",
                                        training=out / "train.zarr", out=out / "report_forecast")
    timed("evaluate", start)
    for item in (out / "report_ensemble").iterdir():
        if item.is_file():
            shutil.copy2(item, out / item.name)
    metrics["forecast"] = {k: forecast_metrics.get(k) for k in ("rama_js", "basins", "valid_fraction",
                                                                  "transitions", "samples_per_cpu_second")}
    metrics["timings_s"] = timings
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
