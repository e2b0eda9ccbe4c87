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

from pydantic import Field, model_validator

from models.training import TrainConfig
from pipeline.config import StrictModel
from pipeline.protein.modeling.commands import forecast_protein, sample_protein
from pipeline.protein.modeling.data import BondModel, Representation, resolve_bond_model
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
    sampler_steps: int = 8
    lag_ps: float = 10.0
    representation: Representation = Field("internal", description="internal or cartesian features")
    bonds: BondModel | None = Field(None, description="internal features: fixed (default) or learned bond lengths")
    forecast_steps: int = Field(500, description="lags per forecast trajectory")
    forecast_members: int = 8
    network: ProteinNetworkConfig = ProteinNetworkConfig()
    ensemble_train: TrainConfig = TrainConfig(steps=40000, batch_size=512, lr=1e-3, warmup_steps=200,
                                              ema_decay=0.999, log_every=100, checkpoint_every=1000,
                                              max_minutes=7.0)
    forecast_train: TrainConfig = TrainConfig(steps=20000, batch_size=512, lr=1e-3, warmup_steps=200,
                                              ema_decay=0.999, log_every=100, checkpoint_every=1000,
                                              max_minutes=2.0)

    @model_validator(mode="after")
    def _fixed_bonds_need_internal(self) -> RunProteinConfig:
        resolve_bond_model(self.representation, self.bonds)
        return self

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


# -- stages (each one a plain function; the Prefect flow makes each one a cached task) -------------------


def stage_md(config: RunProteinConfig, out: Path, name: str, *, progress: bool = True) -> Path:
    """Simulate (OpenMM, cached) and ingest the ``train`` or ``reference`` MD into ``out/NAME.zarr``."""
    from pipeline.protein.ingest import ingest_protein
    from pipeline.protein.simulate import PeptideSimulation, builtin_source_string

    ns, replicas, seed = ((config.train_ns, config.train_replicas, config.seed) if name == "train"
                          else (config.reference_ns, config.reference_replicas, config.seed + 1))
    log.info("simulate + ingest the %s MD: %d x %g ns", name, replicas, ns)
    params = PeptideSimulation(ns=ns, seed=seed, replicas=replicas, save_every_ps=config.save_every_ps)
    return ingest_protein(traj=[builtin_source_string(params)], out=Path(out) / f"{name}.zarr", progress=progress)


def train_spec(config: RunProteinConfig, out: Path, task: str) -> ProteinTrainConfig:
    """The training config of the ``ensemble`` or ``forecast`` model."""
    train_config = config.ensemble_train if task == "ensemble" else config.forecast_train
    return ProteinTrainConfig(data=str(Path(out) / "train.zarr"), task=task, lag_ps=config.lag_ps,
                              representation=config.representation, bonds=config.bonds, network=config.network,
                              train=train_config)


def stage_train(config: RunProteinConfig, out: Path, task: str, *, progress: bool = True) -> Path:
    """Train the ``ensemble`` or ``forecast`` model into ``out/TASK_model``."""
    log.info("train the %s model", task)
    run = Path(out) / f"{task}_model"
    train_protein(train_spec(config, out, task), out=run, progress=progress)
    return run


def stage_sample(config: RunProteinConfig, out: Path, *, progress: bool = True) -> Path:
    """Draw ``config.samples`` conformations into ``out/samples``."""
    return sample_protein(model=Path(out) / "ensemble_model", n=config.samples, out=Path(out) / "samples",
                          sampler=config.sampler, steps=config.sampler_steps, seed=config.seed, progress=progress)


def stage_forecast(config: RunProteinConfig, out: Path, *, progress: bool = True) -> Path:
    """Roll the forecast trajectories from the first reference frame into ``out/forecast``."""
    return forecast_protein(model=Path(out) / "forecast_model", start=f"{Path(out) / 'reference.zarr'}:0",
                            steps=config.forecast_steps, members=config.forecast_members, out=Path(out) / "forecast",
                            sampler=config.sampler, sampler_steps=config.sampler_steps, seed=config.seed,
                            progress=progress)


def stage_evaluate(out: Path) -> Path:
    """Evaluate samples and trajectories against the reference MD; returns ``out/metrics.json``."""
    from pipeline.protein.report import evaluate_protein

    root = Path(out)
    common = dict(reference=root / "reference.zarr", training=root / "train.zarr")
    metrics = evaluate_protein(samples=root / "samples" / "samples.zarr", out=root / "report_ensemble", **common)
    forecast = evaluate_protein(samples=root / "forecast" / "trajectories.zarr", out=root / "report_forecast",
                                **common)
    for item in (root / "report_ensemble").iterdir():
        if item.is_file():
            shutil.copy2(item, root / item.name)
    metrics["forecast"] = {k: forecast.get(k) for k in ("rama_js", "basins", "valid_fraction", "transitions",
                                                         "samples_per_cpu_second")}
    (root / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return root / "metrics.json"


def run_protein(config: RunProteinConfig, *, out: str | Path, progress: bool = True) -> dict:
    """Run every stage into ``out`` in this process; returns the ensemble metrics with the forecast
    metrics under ``"forecast"`` and the stage timings under ``"timings_s"``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_config.json").write_text(config.model_dump_json(indent=1))
    timings: dict[str, float] = {}
    stages = [(f"md_{name}", lambda name=name: stage_md(config, out, name, progress=progress))
              for name in ("train", "reference")]
    stages += [(f"train_{task}", lambda task=task: stage_train(config, out, task, progress=progress))
               for task in ("ensemble", "forecast")]
    stages += [("sample", lambda: stage_sample(config, out, progress=progress)),
               ("forecast", lambda: stage_forecast(config, out, progress=progress)),
               ("evaluate", lambda: stage_evaluate(out))]
    for name, stage in stages:
        start = time.monotonic()
        stage()
        timings[name] = round(time.monotonic() - start, 1)
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["timings_s"] = timings
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
