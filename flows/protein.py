"""Protein flow: ``protein_pipeline`` — simulate + ingest MD → train → sample / forecast → evaluate.

The same stages as :func:`pipeline.protein.modeling.run.run_protein` (alanine dipeptide, OpenMM), each a
cached Prefect task over the protein pipeline's public functions. Tasks return store/run paths; caches
are keyed on the run config, the output directory and the inputs' identities (the MD store's metadata
digest, the checkpoint hash).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import StepTimer, cached_options, checkpoint_hash, exists, run_cached, train_with_progress


def _store_digest(path: Path) -> str:
    """Identity of a structure store: a digest of its root metadata (written once, atomically)."""
    meta = path / "zarr.json"
    return hashlib.sha256(meta.read_bytes()).hexdigest()[:16] if meta.exists() else "absent"


def _key(stage: str) -> Any:
    def key(p: dict[str, Any]) -> list[Any]:
        out = Path(p["out"])
        parts: list[Any] = [stage, p["config"], str(out.resolve()), p.get("name")]
        if stage in ("train", "evaluate"):
            parts += [_store_digest(out / "train.zarr"), _store_digest(out / "reference.zarr")]
        if stage == "sample":
            parts.append(checkpoint_hash(out / "ensemble_model"))
        if stage == "forecast":
            parts.append(checkpoint_hash(out / "forecast_model"))
        if stage == "evaluate":
            parts += [_store_digest(out / "samples" / "samples.zarr"),
                      _store_digest(out / "forecast" / "trajectories.zarr")]
        return parts

    return key


def _config(config: dict[str, Any]):  # type: ignore[no-untyped-def]
    from pipeline.protein.modeling.run import RunProteinConfig

    return RunProteinConfig.model_validate(config)


@task(name="md", task_run_name="md-{name}", **cached_options(_key("md")))
def md_stage(config: dict[str, Any], out: str, name: str) -> str:
    """Simulate (OpenMM, cached) and ingest the ``train`` or ``reference`` MD into ``out/NAME.zarr``."""
    from pipeline.protein.ingest import ingest_protein
    from pipeline.protein.simulate import PeptideSimulation, builtin_source_string

    cfg = _config(config)
    ns, replicas, seed = ((cfg.train_ns, cfg.train_replicas, cfg.seed) if name == "train"
                          else (cfg.reference_ns, cfg.reference_replicas, cfg.seed + 1))
    params = PeptideSimulation(ns=ns, seed=seed, replicas=replicas, save_every_ps=cfg.save_every_ps)
    return str(ingest_protein(traj=[builtin_source_string(params)], out=Path(out) / f"{name}.zarr", progress=False))


@task(name="train-protein", task_run_name="train-{name}", **cached_options(_key("train")))
def train_stage(config: dict[str, Any], out: str, name: str) -> str:
    """Train the ``ensemble`` or ``forecast`` model into ``out/NAME_model`` (progress artifact)."""
    from pipeline.protein.modeling.train import ProteinTrainConfig, train_protein

    cfg = _config(config)
    train = cfg.ensemble_train if name == "ensemble" else cfg.forecast_train
    run = Path(out) / f"{name}_model"
    spec = ProteinTrainConfig(data=str(Path(out) / "train.zarr"), task=name, lag_ps=cfg.lag_ps, network=cfg.network,
                              train=train)
    train_with_progress(lambda: train_protein(spec, out=run, progress=False), metrics=run / "metrics.jsonl",
                        total_steps=train.steps, key=f"train-progress-protein-{name}")
    return str(run)


@task(name="sample-protein", task_run_name="sample-{out}", **cached_options(_key("sample")))
def sample_stage(config: dict[str, Any], out: str) -> str:
    from pipeline.protein.modeling.commands import sample_protein

    cfg = _config(config)
    return str(sample_protein(model=Path(out) / "ensemble_model", n=cfg.samples, out=Path(out) / "samples",
                              sampler=cfg.sampler, steps=cfg.sampler_steps, seed=cfg.seed, progress=False))


@task(name="forecast-protein", task_run_name="forecast-{out}", **cached_options(_key("forecast")))
def forecast_stage(config: dict[str, Any], out: str) -> str:
    from pipeline.protein.modeling.commands import forecast_protein

    cfg = _config(config)
    return str(forecast_protein(model=Path(out) / "forecast_model", start=f"{Path(out) / 'reference.zarr'}:0",
                                steps=cfg.forecast_steps, members=cfg.forecast_members, out=Path(out) / "forecast",
                                sampler=cfg.sampler, sampler_steps=cfg.sampler_steps, seed=cfg.seed,
                                progress=False))


@task(name="evaluate-protein", task_run_name="evaluate-{out}", **cached_options(_key("evaluate")))
def evaluate_stage(config: dict[str, Any], out: str) -> str:
    """Evaluate samples and trajectories against the reference MD; returns ``out/metrics.json``."""
    from pipeline.protein.report import evaluate_protein

    root = Path(out)
    metrics = evaluate_protein(samples=root / "samples" / "samples.zarr", reference=root / "reference.zarr",
                               training=root / "train.zarr", out=root / "report_ensemble")
    forecast = evaluate_protein(samples=root / "forecast" / "trajectories.zarr", reference=root / "reference.zarr",
                                training=root / "train.zarr", out=root / "report_forecast")
    for item in (root / "report_ensemble").iterdir():
        if item.is_file():
            shutil.copy2(item, root / item.name)
    metrics["forecast"] = {k: forecast.get(k) for k in ("rama_js", "basins", "valid_fraction", "transitions",
                                                         "samples_per_cpu_second")}
    (root / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return str(root / "metrics.json")


@flow(name="protein-pipeline", log_prints=True)
def protein_pipeline(out: str, config: dict[str, Any] | None = None, quick: bool = False,
                     refresh: bool = False) -> str:
    """MD (train, reference) → train (ensemble, forecast) → sample, forecast → evaluate; returns the path of
    ``metrics.json``. Each stage is a cached task (``refresh``: ignore the cache)."""
    from pipeline.protein.modeling.run import RunProteinConfig

    cfg = RunProteinConfig.model_validate(config) if config else (RunProteinConfig.quick() if quick
                                                                  else RunProteinConfig())
    cfg_json = cfg.model_dump(mode="json")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    (root / "run_config.json").write_text(cfg.model_dump_json(indent=1))

    timer = StepTimer("protein-pipeline")
    for name in ("train", "reference"):
        with timer.step(f"md-{name}", out=out):
            run_cached(md_stage, cfg_json, out, name, valid=exists, refresh=refresh)
    for name in ("ensemble", "forecast"):
        with timer.step(f"train-{name}", run=str(root / f"{name}_model")):
            run_cached(train_stage, cfg_json, out, name, refresh=refresh,
                       valid=lambda r: checkpoint_hash(r) != "none")
    with timer.step("sample", model=str(root / "ensemble_model")):
        run_cached(sample_stage, cfg_json, out, valid=exists, refresh=refresh)
    with timer.step("forecast", model=str(root / "forecast_model")):
        run_cached(forecast_stage, cfg_json, out, valid=exists, refresh=refresh)
    with timer.step("evaluate", out=out):
        metrics_path = run_cached(evaluate_stage, cfg_json, out, valid=exists, refresh=refresh)
    metrics = json.loads(Path(metrics_path).read_text())
    report = root / "report.md"
    if report.exists():
        create_markdown_artifact(report.read_text(), key="protein-report", description=str(report))
    headline = {k: metrics.get(k) for k in ("rama_js", "valid_fraction", "samples_per_cpu_second")
                if not isinstance(metrics.get(k), (dict, list))}
    create_table_artifact([{"metric": k, "value": v} for k, v in headline.items()], key="protein-headline",
                          description="headline protein metrics")
    timer.publish()
    return str(metrics_path)
