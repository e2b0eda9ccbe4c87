"""The weather operations as flows: ``ingest``, ``train``, ``forecast_cycle`` and ``verify`` (the end-to-end run
is the generic ``weather-pipeline`` flow of :mod:`flows.runs`).

Thin orchestration over :mod:`pipeline` (no science here). Tasks exchange paths, snapshot ids and small
JSON dicts. I/O tasks retry with exponential backoff (:func:`flows.common.io_retry_options`); expensive
steps are cached on the hashes that matter (config/recipe hash, data fingerprint, checkpoint hash, and
whether the output still exists), so re-running a finished step returns at once. Each flow publishes a
per-step timing table; a failed step is named with its input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import (
    StepTimer,
    artifact_key,
    cached_options,
    checkpoint_hash,
    exists,
    io_retry_options,
    run_cached,
    store_fingerprint,
    progress_artifact,
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
    report = progress_artifact(f"train-progress-{Path(out).name}", f"training steps of {out}")
    result = train_weather(cfg, out=out, progress=False, on_step=lambda step: report(step / cfg.train.steps))
    report(1.0)
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


# The flows under the names of the operations they run.
ingest = ingest_flow
train = train_flow

__all__ = ["forecast_cycle", "ingest", "ingest_flow", "train", "train_flow", "verify"]
