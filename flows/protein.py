"""Protein flow: ``protein_pipeline`` — simulate + ingest MD → train → sample / forecast → evaluate.

The same stages as :func:`pipeline.protein.run.run_protein` (alanine dipeptide, OpenMM), each a
cached Prefect task over the protein pipeline's public functions. Tasks return store/run paths; caches
are keyed on the run config, the output directory and the inputs' identities (the MD store's metadata
digest, the checkpoint hash).
"""

from __future__ import annotations

import hashlib
import json
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
    from pipeline.protein.run import RunProteinConfig

    return RunProteinConfig.model_validate(config)


@task(name="md", task_run_name="md-{name}", **cached_options(_key("md")))
def md_stage(config: dict[str, Any], out: str, name: str) -> str:
    """Simulate (OpenMM, cached) and ingest the ``train`` or ``reference`` MD into ``out/NAME.zarr``."""
    from pipeline.protein.run import stage_md

    return str(stage_md(_config(config), Path(out), name, progress=False))


@task(name="train-protein", task_run_name="train-{name}", **cached_options(_key("train")))
def train_stage(config: dict[str, Any], out: str, name: str) -> str:
    """Train the ``ensemble`` or ``forecast`` model into ``out/NAME_model`` (progress artifact)."""
    from pipeline.protein.run import stage_train, train_spec

    cfg = _config(config)
    run = Path(out) / f"{name}_model"
    train_with_progress(lambda: stage_train(cfg, Path(out), name, progress=False), metrics=run / "metrics.jsonl",
                        total_steps=train_spec(cfg, Path(out), name).train.steps,
                        key=f"train-progress-protein-{name}")
    return str(run)


@task(name="sample-protein", task_run_name="sample-{out}", **cached_options(_key("sample")))
def sample_stage(config: dict[str, Any], out: str) -> str:
    from pipeline.protein.run import stage_sample

    return str(stage_sample(_config(config), Path(out), progress=False))


@task(name="forecast-protein", task_run_name="forecast-{out}", **cached_options(_key("forecast")))
def forecast_stage(config: dict[str, Any], out: str) -> str:
    from pipeline.protein.run import stage_forecast

    return str(stage_forecast(_config(config), Path(out), progress=False))


@task(name="evaluate-protein", task_run_name="evaluate-{out}", **cached_options(_key("evaluate")))
def evaluate_stage(config: dict[str, Any], out: str) -> str:
    """Evaluate samples and trajectories against the reference MD; returns ``out/metrics.json``."""
    from pipeline.protein.run import stage_evaluate

    return str(stage_evaluate(Path(out)))


@flow(name="protein-pipeline", log_prints=True)
def protein_pipeline(out: str, config: dict[str, Any] | None = None, quick: bool = False,
                     refresh: bool = False) -> str:
    """MD (train, reference) → train (ensemble, forecast) → sample, forecast → evaluate; returns the path of
    ``metrics.json``. Each stage is a cached task (``refresh``: ignore the cache)."""
    from pipeline.protein.run import RunProteinConfig

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
