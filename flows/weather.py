"""Weather flows: ``ingest``, ``train``, ``forecast_cycle``, ``verify`` and the end-to-end ``weather_pipeline``.

Thin orchestration over :mod:`pipeline` (no science here). Tasks exchange paths, snapshot ids and small
JSON dicts. I/O tasks retry with exponential backoff (:func:`flows.common.io_retry_options`); expensive
steps are cached on the hashes that matter (config/recipe hash, data fingerprint, checkpoint hash, and
whether the output still exists), so re-running a finished step returns at once. Each flow publishes a
per-step timing table; a failed step is named with its input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact

from flows.common import (
    StepTimer,
    artifact_key,
    cached_options,
    checkpoint_hash,
    exists,
    io_retry_options,
    run_cached,
    store_fingerprint,
    train_with_progress,
)

# -- ingest ---------------------------------------------------------------------------------------------


@task(name="extend-analysis", task_run_name="extend-analysis-{analysis}-{hours}h", **io_retry_options())
def extend_analysis(analysis: str, hours: float) -> dict[str, Any]:
    """New analyses arrive: continue the embedded atmosphere ``hours`` and append them (atomic block)."""
    from pipeline.weather.simulate.extend import extend_simulation

    result = extend_simulation(analysis, hours=hours)
    return {"path": analysis, "added": result.added, "last_time": result.last_time}


@task(name="ingest-recipe", task_run_name="ingest-{recipe}",
      **io_retry_options(),
      **cached_options(lambda p: [Path(p["recipe"]).read_text() if Path(p["recipe"]).exists() else "missing",
                                  p["out"]]))
def ingest_recipe(recipe: str, out: str) -> str:
    """Run an ingest recipe into the analysis store (written beside, then renamed into place)."""
    from pipeline.config import load_config
    from pipeline.weather.ingest import ingest
    from pipeline.weather.recipe import Recipe

    ingest(load_config(Recipe, recipe), out, overwrite=True, progress=False, recipe_path=recipe)
    return out


@flow(name="ingest", log_prints=True)
def ingest_flow(analysis: str, extend_hours: float = 0.0, recipe: str | None = None) -> dict[str, Any]:
    """Bring the analysis store up to date: run ``recipe`` (real data) or, on the embedded atmosphere,
    extend the simulation by ``extend_hours``. Returns the store path and its data fingerprint."""
    timer = StepTimer("ingest")
    out: dict[str, Any] = {"path": analysis, "added": []}
    if recipe:
        with timer.step("ingest-recipe", recipe=recipe):
            run_cached(ingest_recipe, recipe, analysis, valid=exists)
    if extend_hours:
        with timer.step("extend-analysis", analysis=analysis, hours=extend_hours):
            out.update(extend_analysis(analysis, extend_hours))
    out["fingerprint"] = store_fingerprint(analysis)
    timer.publish()
    return out


# -- train ----------------------------------------------------------------------------------------------


def _train_key(p: dict[str, Any]) -> list[Any]:
    return [p["config"], store_fingerprint(p["config"]["data"]), str(Path(p["out"]).resolve())]


@task(name="train-weather", task_run_name="train-weather-{out}", **cached_options(_train_key))
def train_weather_task(config: dict[str, Any], out: str) -> dict[str, Any]:
    """Train (or resume) into run directory ``out``; a progress artifact follows ``metrics.jsonl``."""
    from pipeline.weather.modeling.train import WeatherTrainConfig, train_weather

    cfg = WeatherTrainConfig.model_validate(config)
    result = train_with_progress(lambda: train_weather(cfg, out=out, progress=False),
                                 metrics=Path(out) / "metrics.jsonl", total_steps=cfg.train.steps,
                                 key=f"train-progress-{Path(out).name}")
    return {"run": out, "step": result.step, "stopped": result.stopped, "checkpoint": checkpoint_hash(out)}


@flow(name="train", log_prints=True)
def train_flow(data: str, out: str, config: dict[str, Any] | None = None, promote_to: str | None = None,
               promote_name: str | None = None) -> dict[str, Any]:
    """Train a weather model on the store ``data`` (``config``: WeatherTrainConfig fields); with
    ``promote_to`` (a registry directory) the result becomes the current model."""
    from pipeline.registry import promote

    timer = StepTimer("train")
    cfg = {**(config or {}), "data": data}
    with timer.step("train-weather", data=data, out=out):
        result = run_cached(train_weather_task, cfg, out, valid=lambda r: checkpoint_hash(r["run"]) == r["checkpoint"])
    if promote_to:
        with timer.step("promote", run=out, registry=promote_to):
            entry = promote(out, registry=promote_to, name=promote_name)
            result["promoted"] = entry.name
    timer.publish()
    return result


# -- operational cycle --------------------------------------------------------------------------------


@task(name="resolve-cycle", task_run_name="resolve-cycle-{analysis}", **io_retry_options())
def resolve_cycle(analysis: str, store: str, registry: str) -> dict[str, Any]:
    """The init time to forecast (or None) and the current model; a missing input raises (then retries)."""
    from pipeline.registry import current_model
    from pipeline.weather.operations import next_cycle

    model = current_model(registry)
    return {"init_time": next_cycle(analysis=analysis, store=store), "checkpoint": model.checkpoint,
            "model": model.name, "sha256": model.sha256}


@task(name="forecast-init", task_run_name="forecast-{init_time}", **io_retry_options())
def forecast_init(analysis: str, store: str, checkpoint: str, checkpoint_sha: str, init_time: str,
                  options: dict[str, Any]) -> dict[str, Any]:
    """Forecast one init time and commit it (one atomic commit; an existing cycle is skipped, so no cache is
    needed). ``checkpoint_sha`` names the model in the task's inputs."""
    from pipeline.weather.operations import run_cycle

    return run_cycle(analysis=analysis, store=store, checkpoint=checkpoint, init_time=init_time, **options)


@flow(name="forecast-cycle", log_prints=True)
def forecast_cycle(analysis: str, store: str, registry: str, members: int = 4, lead: str = "1d",
                   sampler: str = "euler", sampler_steps: int = 2, extend_hours: float = 0.0,
                   recipe: str | None = None, verify_after: bool = True, seed: int = 0) -> dict[str, Any]:
    """One operational cycle: ingest new analyses (``recipe`` re-ingests real data into the analysis store;
    ``extend_hours`` simulates them on the embedded atmosphere), forecast the newest unforecast init time
    with the current model, commit it; then verify every cycle whose truth has arrived (``verify_after``).
    Running it again with no new data adds nothing."""
    timer = StepTimer("forecast-cycle")
    summary: dict[str, Any] = {"analysis": analysis, "store": store}
    if recipe:
        with timer.step("ingest-recipe", recipe=recipe):
            run_cached(ingest_recipe, recipe, analysis, valid=exists)
    if extend_hours:
        with timer.step("extend-analysis", analysis=analysis, hours=extend_hours):
            summary["ingested"] = extend_analysis(analysis, extend_hours)["added"]
    with timer.step("resolve-cycle", analysis=analysis, registry=registry):
        plan = resolve_cycle(analysis, store, registry)
    summary["model"] = plan["model"]
    if plan["init_time"] is None:
        summary["cycle"] = {"action": "up-to-date"}
        print(f"forecast store {store} already holds the newest analysis; nothing to do")
    else:
        options = {"members": members, "lead": lead, "sampler": sampler, "sampler_steps": sampler_steps,
                   "seed": seed}
        with timer.step("forecast", init_time=plan["init_time"], model=plan["model"]):
            summary["cycle"] = forecast_init(analysis, store, plan["checkpoint"], plan["sha256"],
                                             plan["init_time"], options)
    if verify_after:
        with timer.step("verify", store=store):
            summary["verification"] = verify(analysis, store)
    create_markdown_artifact(_cycle_markdown(summary), key=artifact_key("forecast-cycle-report"),
                             description="What this forecast cycle did")
    timer.publish()
    return summary


def _cycle_markdown(summary: dict[str, Any]) -> str:
    cycle = summary.get("cycle", {})
    lines = ["# Forecast cycle", "", f"- analysis: `{summary['analysis']}`", f"- store: `{summary['store']}`",
             f"- model: `{summary.get('model')}`", f"- cycle: {cycle.get('init_time', '-')} → {cycle.get('action')}"
             + (f" (snapshot `{cycle.get('snapshot_id')}`)" if cycle.get("snapshot_id") else "")]
    if summary.get("ingested"):
        lines.append(f"- new analyses: {', '.join(summary['ingested'])}")
    ver = summary.get("verification")
    if ver:
        lines.append(f"- verified: {ver['added']} new cycle(s), {ver['total']} in the table")
    return "\n".join(lines) + "\n"


# -- verification ---------------------------------------------------------------------------------------


@task(name="pending-verification", task_run_name="pending-verification-{store}", **io_retry_options())
def pending_task(analysis: str, store: str) -> list[str]:
    from pipeline.weather.operations import pending_verification

    return pending_verification(analysis=analysis, store=store)


@task(name="score-cycle", task_run_name="score-cycle-{init_time}", **io_retry_options())
def score_cycle_task(analysis: str, store: str, init_time: str) -> dict[str, Any]:
    """Scores of one cycle against the arrived truth (JSON rows)."""
    from pipeline.weather.operations import score_cycle

    return score_cycle(analysis=analysis, store=store, init_time=init_time)


@task(name="append-verification", task_run_name="append-verification-{store}", **io_retry_options())
def append_task(store: str, rows: list[dict[str, Any]], provenance: dict[str, Any]) -> dict[str, Any]:
    from pipeline.weather.operations import append_verification

    return append_verification(store=store, rows=rows, provenance=provenance)


@flow(name="verify", log_prints=True)
def verify(analysis: str, store: str) -> dict[str, Any]:
    """Score every cycle whose truth has arrived and is not yet verified (fanned out over cycles on the
    flow's task runner) and append them to the store's ``verification`` table in one commit."""
    timer = StepTimer("verify")
    with timer.step("pending-verification", store=store):
        pending = pending_task(analysis, store)
    rows: list[dict[str, Any]] = []
    if pending:
        futures = {init: score_cycle_task.submit(analysis, store, init) for init in pending}
        for init, future in futures.items():
            with timer.step("score-cycle", init_time=init):
                rows.append(future.result())
    provenance = {"source": "velocast verify", "config": {"analysis": analysis, "store": store},
                  "checkpoint": None, "data_snapshot": store_fingerprint(analysis)}
    with timer.step("append-verification", store=store, cycles=len(rows)):
        result = append_task(store, rows, provenance) if rows else {"added": 0, "total": None, "snapshot_id": None}
    if result["total"] is None:
        from pipeline.weather.operations import verified_init_times

        result["total"] = len(verified_init_times(store))
    if rows:
        table = [{"init_time": r["init_time"], "channel": c, "lead_h": r["lead_hours"][-1],
                  "crps": r["crps"][i][-1], "crps_persistence": r["crps_persistence"][i][-1]}
                 for r in rows for i, c in enumerate(r["channels"])]
        create_table_artifact(table, key=artifact_key("verification-latest"),
                              description="CRPS at the longest lead of the cycles verified in this run")
    result["verified"] = [r["init_time"] for r in rows]
    timer.publish()
    return result


# -- end to end -----------------------------------------------------------------------------------------


def _run_key(stage: str) -> Any:
    """Cache key of a pipeline stage: the run config, the output directory and the stage's *inputs*
    (the atmosphere's fingerprint, the checkpoint hash, the forecast stores' head snapshots). Outputs are
    not part of the key: the flow checks a cached result's outputs and recomputes when they are gone
    (:func:`flows.common.run_cached`); ``weather_pipeline(refresh=True)`` ignores the cache."""

    def key(p: dict[str, Any]) -> list[Any]:
        out = Path(p["out"])
        parts: list[Any] = [stage, p["config"], str(out.resolve()), p.get("name")]
        if stage != "simulate":
            parts.append(store_fingerprint(out / "atmosphere.zarr"))
        if stage in ("calibrate", "forecast"):
            parts.append(checkpoint_hash(out / (p.get("name") or "model")))
        if stage == "forecast":
            parts.append(_file_text(out / p["name"] / "calibration.json"))
        if stage == "evaluate":
            parts += [_store_head(out / "forecast.icechunk"), _store_head(out / "deterministic_forecast.icechunk")]
        return parts

    return key


@task(name="simulate", task_run_name="simulate-{out}", **cached_options(_run_key("simulate")))
def simulate_stage(config: dict[str, Any], out: str) -> str:
    from pipeline.weather.run import RunWeatherConfig, stage_simulate

    return stage_simulate(RunWeatherConfig.model_validate(config), out=out, progress=False)


@task(name="train-stage", task_run_name="train-{name}", **cached_options(_run_key("train")))
def train_stage(config: dict[str, Any], out: str, name: str) -> dict[str, Any]:
    from pipeline.weather.run import RunWeatherConfig, stage_train

    cfg = RunWeatherConfig.model_validate(config)
    steps = (cfg.train if name == "model" else cfg.deterministic_train).steps
    run = train_with_progress(lambda: stage_train(cfg, out=out, name=name, progress=False),
                              metrics=Path(out) / name / "metrics.jsonl", total_steps=steps,
                              key=f"train-progress-{name}")
    return {"run": run, "checkpoint": checkpoint_hash(run)}


@task(name="calibrate", task_run_name="calibrate-{out}", **cached_options(_run_key("calibrate")))
def calibrate_stage(config: dict[str, Any], out: str) -> dict[str, Any] | None:
    from pipeline.weather.run import RunWeatherConfig, stage_calibrate

    return stage_calibrate(RunWeatherConfig.model_validate(config), out=out)


def _file_text(path: Path) -> str:
    return path.read_text() if path.is_file() else "absent"


@task(name="forecast-stage", task_run_name="forecast-{name}", **io_retry_options(),
      **cached_options(_run_key("forecast")))
def forecast_stage(config: dict[str, Any], out: str, name: str) -> dict[str, Any]:
    from pipeline.weather.run import RunWeatherConfig, stage_forecast

    return stage_forecast(RunWeatherConfig.model_validate(config), out=out, name=name, progress=False)


@task(name="perfect-model", task_run_name="perfect-model-{out}", **cached_options(_run_key("perfect")))
def perfect_model_stage(config: dict[str, Any], out: str) -> str:
    from pipeline.weather.run import RunWeatherConfig, stage_perfect_model

    return stage_perfect_model(RunWeatherConfig.model_validate(config), out=out, progress=False)


def _store_head(path: Path) -> str:
    """The head snapshot id of a forecast store (``absent`` when there is none)."""
    if not path.exists():
        return "absent"
    from pipeline.forecast_store import ForecastStore

    return ForecastStore.open(path).head()


@task(name="evaluate", task_run_name="evaluate-{out}", **cached_options(_run_key("evaluate")))
def evaluate_stage(config: dict[str, Any], out: str) -> str:
    """Score and write the report; returns the path of ``metrics.json`` (the flow writes the final one)."""
    from pipeline.weather.run import RunWeatherConfig, stage_evaluate

    metrics = stage_evaluate(RunWeatherConfig.model_validate(config), out=out)
    path = Path(out) / "metrics.json"
    path.write_text(json.dumps(metrics, indent=1))
    return str(path)


@flow(name="weather-pipeline", log_prints=True)
def weather_pipeline(out: str, config: dict[str, Any] | None = None, quick: bool = False,
                     refresh: bool = False) -> str:
    """simulate → train (flow matching, deterministic) → calibrate the sampler noise → forecast both →
    perfect-model ensemble → evaluate,
    each stage a cached task (``refresh``: ignore the cache); returns the path of ``metrics.json``.
    ``velocast run weather`` runs this flow."""
    from pipeline.weather.run import RunWeatherConfig, finish_metrics

    if config is None:
        cfg = RunWeatherConfig.quick() if quick else RunWeatherConfig()
    else:
        cfg = RunWeatherConfig.model_validate(config)
    cfg_json = cfg.model_dump(mode="json")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    (root / "run_config.json").write_text(cfg.model_dump_json(indent=1))
    timer = StepTimer("weather-pipeline")
    with timer.step("simulate", out=out):
        run_cached(simulate_stage, cfg_json, out, valid=exists, refresh=refresh)
    for name in ("model", "deterministic"):
        with timer.step(f"train-{name}", run=str(root / name)):
            run_cached(train_stage, cfg_json, out, name, refresh=refresh,
                       valid=lambda r: checkpoint_hash(r["run"]) == r["checkpoint"])
    with timer.step("calibrate", run=str(root / "model")):
        run_cached(calibrate_stage, cfg_json, out, refresh=refresh,
                   valid=lambda r: r is None or exists(root / "model" / "calibration.json"))
    forecasts = {}
    for name in ("model", "deterministic"):
        with timer.step(f"forecast-{name}", run=str(root / name)):
            forecasts[name] = run_cached(forecast_stage, cfg_json, out, name, refresh=refresh,
                                         valid=lambda r: exists(r["store"]))
    with timer.step("perfect-model", out=out):
        run_cached(perfect_model_stage, cfg_json, out, valid=exists, refresh=refresh)
    with timer.step("evaluate", out=out):
        metrics_path = run_cached(evaluate_stage, cfg_json, out, refresh=refresh,
                                  valid=lambda r: exists(r, root / "report.md"))
    timings = {row["step"].replace("-", "_"): row["seconds"] for row in timer.rows}
    metrics = finish_metrics(json.loads(Path(metrics_path).read_text()), out=out, timings=timings,
                             nfe_per_step=forecasts["model"]["nfe_per_step"])
    _report_artifacts(metrics, root)
    timer.publish()
    return str(root / "metrics.json")


def _report_artifacts(metrics: dict[str, Any], root: Path) -> None:
    """The report as Markdown, the headline CRPS as a table and the CRPS plot as an image artifact."""
    report = root / "report.md"
    if report.exists():
        create_markdown_artifact(report.read_text(), key="weather-report", description=f"{report}")
    leads = metrics["lead_hours"]
    channel = next((c for c in ("geopotential_500", "temperature_850") if c in metrics["variables"]),
                   metrics["variables"][0])
    rows = []
    for system, scores in metrics["scores"].items():
        values = scores.get("crps", {}).get(channel) or []
        rows.append({"system": system, **{f"{h}h": (None if v is None else round(v, 4))
                                          for h, v in zip(leads, values)}})
    create_table_artifact(rows, key="weather-crps", description=f"fair CRPS of {channel} by lead")
    plots = sorted(root.glob("*crps*.png"))
    if plots:
        create_image_artifact(plots[0].resolve().as_uri(), key="weather-crps-plot", description=str(plots[0]))


# The flows under the names of the operations they run.
ingest = ingest_flow
train = train_flow

__all__ = ["forecast_cycle", "ingest", "ingest_flow", "train", "train_flow", "verify", "weather_pipeline"]
