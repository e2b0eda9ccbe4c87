"""``velocast run protein``: MD → ingest → train → sample/forecast → evaluate on alanine dipeptide, declared once.

Two independent MD data sets: the training MD (seed ``seed``) and the reference MD (seed ``seed + 1``),
each as parallel replicas on all cores. The ensemble model is trained on the training MD and sampled;
the forecast model is trained on the same MD and rolled out from a reference frame. :data:`RUN` lists
the stages with what each reads, writes and keys its cache on. Reports:

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
from typing import Any

from pydantic import Field, model_validator

from models.training import TrainConfig
from pipeline.config import StrictModel, set_fields
from pipeline.console import shown_path
from pipeline.protein.modeling.data import BondModel, Representation, resolve_bond_model
from pipeline.protein.modeling.model import ProteinNetworkConfig, Task
from pipeline.runs import Layout, RunSpec, RunSummary, Stage, StageContext, artefact

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
    representation: Representation = Field("auto", description="auto, internal, modes or cartesian features "
                                                                "(velocast train protein --help)")
    bonds: BondModel | None = Field(None, description="internal features: fixed (default) or learned bond lengths")
    condition_noise: float = Field(0.3, ge=0.0, description="σ of the forecast model's conditioning augmentation "
                                                            "(velocast train protein --condition-noise)")
    forecast_steps: int = Field(1000, description="lags per forecast trajectory")
    forecast_members: int = Field(32, description="forecast trajectories (all from the first reference frame)")
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


def quick_preset() -> dict[str, Any]:
    """``--quick``: the same path at toy sizes (≤ 3 minutes); the fields it sets are complete."""
    train = TrainConfig(steps=60, batch_size=64, lr=1e-3, warmup_steps=5, log_every=20, checkpoint_every=60,
                        max_minutes=0.5)
    return set_fields(RunProteinConfig(
        train_ns=0.1, train_replicas=2, reference_ns=0.1, reference_replicas=2, samples=500, sampler_steps=4,
        lag_ps=2.0, forecast_steps=20, forecast_members=2, network=ProteinNetworkConfig(hidden=64, depth=2, time_dim=32),
        ensemble_train=train, forecast_train=train))


class ProteinRunLayout(Layout):
    """The artefacts of ``velocast run protein --out DIR``."""

    train_md = artefact("train.zarr", "zarr", "the training MD, ingested")
    reference_md = artefact("reference.zarr", "zarr", "the independent reference MD, ingested")
    ensemble_model = artefact("ensemble_model", "run", "the conformational-ensemble model's run")
    forecast_model = artefact("forecast_model", "run", "the time-lagged (trajectory forecast) model's run")
    samples = artefact("samples/samples.zarr", "zarr", "conformations drawn from the ensemble model "
                                                      "(exports beside it)")
    trajectories = artefact("forecast/trajectories.zarr", "zarr", "trajectories rolled out by the forecast model "
                                                                 "(exports beside it)")
    metrics = artefact("metrics.json", "file", "the ensemble's scores, with the forecasts' under \"forecast\"")
    report = artefact("report.md", "file", "the ensemble's report; report_ensemble/ and report_forecast/ hold both")


# -- stages: (config, layout, context) -> a small JSON result ---------------------------------------------


def _md(config: RunProteinConfig, layout: ProteinRunLayout, context: StageContext, *, which: str) -> dict:
    from pipeline.protein.ingest import ingest_protein
    from pipeline.protein.simulate import PeptideSimulation, builtin_source_string

    ns, replicas, seed = ((config.train_ns, config.train_replicas, config.seed) if which == "train"
                          else (config.reference_ns, config.reference_replicas, config.seed + 1))
    params = PeptideSimulation(ns=ns, seed=seed, replicas=replicas, save_every_ps=config.save_every_ps)
    out = layout.train_md if which == "train" else layout.reference_md
    ingest_protein(traj=[builtin_source_string(params)], out=out, progress=context.progress)
    return {"store": str(out), "ns": ns, "replicas": replicas}


def md_train(config: RunProteinConfig, layout: ProteinRunLayout, context: StageContext) -> dict:
    """Simulate (OpenMM, cached) and ingest the training MD."""
    return _md(config, layout, context, which="train")


def md_reference(config: RunProteinConfig, layout: ProteinRunLayout, context: StageContext) -> dict:
    """Simulate (OpenMM, cached) and ingest the reference MD (seed + 1)."""
    return _md(config, layout, context, which="reference")


def _train(config: RunProteinConfig, layout: ProteinRunLayout, context: StageContext, *, task: Task) -> dict:
    from pipeline.protein.modeling.train import ProteinTrainConfig, train_protein

    train = config.ensemble_train if task == "ensemble" else config.forecast_train
    run = layout.ensemble_model if task == "ensemble" else layout.forecast_model
    spec = ProteinTrainConfig(data=str(layout.train_md), task=task, lag_ps=config.lag_ps,
                              representation=config.representation, bonds=config.bonds, network=config.network,
                              condition_noise=config.condition_noise if task == "forecast" else None, train=train)
    result = train_protein(spec, out=run, progress=context.progress,
                           on_step=lambda step: context.report(step, train.steps))
    return {"run": str(run), "step": result.step, "stopped": result.stopped}


def train_ensemble(config: RunProteinConfig, layout: ProteinRunLayout, context: StageContext) -> dict:
    """Train the conformational-ensemble model."""
    return _train(config, layout, context, task="ensemble")


def train_forecast(config: RunProteinConfig, layout: ProteinRunLayout, context: StageContext) -> dict:
    """Train the time-lagged forecast model."""
    return _train(config, layout, context, task="forecast")


def sample(config: RunProteinConfig, layout: ProteinRunLayout, context: StageContext) -> dict:
    """Draw ``samples`` conformations from the ensemble model."""
    from pipeline.protein.modeling.generate import SampleConfig, sample_protein

    store = sample_protein(SampleConfig(model=str(layout.ensemble_model), n=config.samples, sampler=config.sampler,
                                        steps=config.sampler_steps, seed=config.seed),
                           out=layout.samples.parent, progress=context.progress)
    return {"store": str(store)}


def forecast(config: RunProteinConfig, layout: ProteinRunLayout, context: StageContext) -> dict:
    """Roll the forecast trajectories out from the first reference frame."""
    from pipeline.protein.modeling.generate import ForecastConfig, forecast_protein

    store = forecast_protein(ForecastConfig(model=str(layout.forecast_model), start=f"{layout.reference_md}:0",
                                            steps=config.forecast_steps, members=config.forecast_members,
                                            sampler=config.sampler, sampler_steps=config.sampler_steps,
                                            seed=config.seed),
                             out=layout.trajectories.parent, progress=context.progress)
    return {"store": str(store)}


def evaluate(config: RunProteinConfig, layout: ProteinRunLayout, context: StageContext) -> dict:
    """Evaluate samples and trajectories against the reference MD; ``metrics.json`` holds both."""
    from pipeline.protein.modeling.evaluate import EvaluateConfig, evaluate_protein

    root = layout.root
    common = dict(reference=str(layout.reference_md), training=str(layout.train_md))
    metrics = evaluate_protein(EvaluateConfig(samples=str(layout.samples), **common), out=root / "report_ensemble")
    trajectories = evaluate_protein(EvaluateConfig(samples=str(layout.trajectories), **common),
                                    out=root / "report_forecast")
    for item in (root / "report_ensemble").iterdir():
        if item.is_file() and item.name != "metrics.json":
            shutil.copy2(item, root / item.name)
    metrics["forecast"] = {k: trajectories.get(k) for k in ("rama_js", "basins", "valid_fraction", "transitions",
                                                            "implied_timescales", "samples_per_cpu_second")}
    layout.metrics.write_text(json.dumps(metrics, indent=2) + "\n")
    return {"metrics": str(layout.metrics), "rama_js": metrics.get("rama_js")}


MD = ("seed", "save_every_ps")

STAGES: tuple[Stage[RunProteinConfig, ProteinRunLayout], ...] = (
    Stage("md-train", md_train, "simulate and ingest the training MD", outputs=("train_md",),
          config=(*MD, "train_ns", "train_replicas")),
    Stage("md-reference", md_reference, "simulate and ingest the reference MD", outputs=("reference_md",),
          config=(*MD, "reference_ns", "reference_replicas")),
    Stage("train-ensemble", train_ensemble, "train the conformational-ensemble model", inputs=("train_md",),
          outputs=("ensemble_model",), config=("representation", "bonds", "network", "lag_ps", "ensemble_train")),
    Stage("train-forecast", train_forecast, "train the time-lagged forecast model", inputs=("train_md",),
          outputs=("forecast_model",), config=("representation", "bonds", "network", "lag_ps", "condition_noise",
                                                      "forecast_train")),
    Stage("sample", sample, "draw conformations from the ensemble model", inputs=("ensemble_model",),
          outputs=("samples",), config=("seed", "samples", "sampler", "sampler_steps")),
    Stage("forecast", forecast, "roll trajectory forecasts out from a reference frame",
          inputs=("forecast_model", "reference_md"), outputs=("trajectories",),
          config=("seed", "forecast_steps", "forecast_members", "sampler", "sampler_steps")),
    Stage("evaluate", evaluate, "score samples and trajectories against the reference MD",
          inputs=("train_md", "reference_md", "samples", "trajectories"), outputs=("metrics", "report")),
)


def summary(layout: ProteinRunLayout) -> RunSummary:
    """Ramachandran JS, αR populations and validity of the samples and the forecasts, and the report."""
    metrics = json.loads(layout.metrics.read_text())
    basins = metrics.get("basins", {})
    forecast = metrics.get("forecast", {})
    rows = [
        {"system": "samples", "rama_js": metrics.get("rama_js"),
         "alpha_r": basins.get("samples", {}).get("alpha_r"), "valid": metrics.get("valid_fraction"),
         "samples / CPU-s": metrics.get("samples_per_cpu_second")},
        {"system": "forecast trajectories", "rama_js": forecast.get("rama_js"),
         "alpha_r": (forecast.get("basins") or {}).get("samples", {}).get("alpha_r"),
         "valid": forecast.get("valid_fraction"), "samples / CPU-s": forecast.get("samples_per_cpu_second")},
        {"system": "training MD", "rama_js": metrics.get("rama_js_training"),
         "alpha_r": basins.get("training", {}).get("alpha_r"), "valid": None, "samples / CPU-s": None},
        {"system": "reference MD", "rama_js": None, "alpha_r": basins.get("reference", {}).get("alpha_r"),
         "valid": None, "samples / CPU-s": None},
    ]
    plots = sorted(layout.root.glob("*.png"))
    return RunSummary(title="alanine dipeptide: Ramachandran JS to the reference MD (lower is better)",
                      headline=rows, report=layout.report, html=layout.report.with_suffix(".html"),
                      plots=[p for p in plots if p.name == "rama.png"] + [p for p in plots if p.name != "rama.png"],
                      next_commands=[
                          (f"velocast sample protein --model {shown_path(layout.ensemble_model)} --n 1000 "
                           f"--formats pdb,xtc --out samples   # more conformations, as PDB/XTC for VMD or PyMOL"),
                          f"velocast run protein --out {shown_path(layout.root)}-full   # the full-size run (about 18 min)",
                      ])


RUN = RunSpec(domain="protein", description="alanine dipeptide: MD → train → sample and forecast → evaluate",
              config=RunProteinConfig, layout=ProteinRunLayout, stages=STAGES, summary=summary,
              presets={"quick": quick_preset})
