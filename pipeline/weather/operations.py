"""The operational forecast cycle and its verification loop.

The operations — :func:`ingest`, :func:`train`, :func:`forecast_cycle`, :func:`verify` — are plain functions over a
:class:`~pipeline.runs.steps.Steps` (in this process with ``LocalSteps``; as Prefect flows built by ``flows``).
Their steps:

* :func:`next_cycle`: the newest analysis time (that has the state one model step before it, which the
  model conditions on) — ``None`` when the forecast store already holds it. Only the newest time is ever
  forecast, so running a cycle twice makes one cycle.
* :func:`run_cycle`: forecast that init time with the model marked current in the registry and commit it
  (one atomic Icechunk commit, idempotent skip).
* :func:`pending_verification`: cycles whose truth has arrived (every lead's valid time is in the
  analysis store) and that the verification table does not hold yet.
* :func:`score_cycle`: fair CRPS, debiased ensemble-mean RMSE and unbiased spread/skill of one cycle, and
  the persistence CRPS beside it, per channel and lead (latitude weighted), as JSON-able rows.
* :func:`append_verification`: merge rows into the store's ``verification`` table (one commit); rows for
  init times already in the table are dropped, so verification never duplicates.

Verification table: dims ``(init_time, channel, lead_time)``; variables ``crps``, ``rmse``, ``ssr``,
``crps_persistence``; attribute ``verified_at`` per write in the commit provenance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import UserError
from pipeline.runs.steps import IO_RETRIES, Steps

log = logging.getLogger(__name__)

TABLE = "verification"
METRICS = ("crps", "rmse", "ssr")


def analysis_times(analysis: str | Path) -> pd.DatetimeIndex:
    """The analysis store's times (UserError when the store is missing)."""
    from pipeline.weather.store import open_training_store

    return pd.DatetimeIndex(open_training_store(analysis)["time"].values)


def next_cycle(*, analysis: str | Path, store: str | Path, step: pd.Timedelta = pd.Timedelta(hours=6)) -> str | None:
    """ISO init time of the newest analysis the store has not forecast, or None (see module)."""
    times = analysis_times(analysis)
    if len(times) < 2:
        raise UserError("the analysis store needs at least two times to start a forecast", path=analysis)
    newest = times[-1]
    if newest - step not in times:
        raise UserError(f"the analysis has no state at {newest - step} (one model step before the newest "
                        f"time {newest})", path=analysis)
    if Path(store).exists() or "://" in str(store):
        from pipeline.forecast_store import ForecastStore

        try:
            done = {pd.Timestamp(t) for t in ForecastStore.open(store).init_times()}
        except UserError:
            done = set()
        if newest in done:
            return None
    return newest.isoformat()


def run_cycle(*, analysis: str | Path, store: str | Path, checkpoint: str, init_time: str, members: int,
              lead: str, sampler: str, sampler_steps: int, seed: int = 0, batch_size: int = 64) -> dict[str, Any]:
    """Forecast ``init_time`` with ``checkpoint`` and commit it; returns action, snapshot id and tag."""
    from pipeline.forecast_store import ForecastStore
    from pipeline.weather.modeling.generate import ForecastConfig, forecast_weather

    config = ForecastConfig(model=checkpoint, data=str(analysis), init_times=[init_time], members=members,
                            lead=lead, sampler=sampler, sampler_steps=sampler_steps, seed=seed,
                            batch_size=batch_size)
    summary = forecast_weather(config, out=store, progress=False)
    fs = ForecastStore.open(store)
    cycle = next((c for c in fs.cycles() if pd.Timestamp(c.init_time) == pd.Timestamp(init_time)), None)
    return {"init_time": init_time, "action": "written" if summary.written else "skipped",
            "snapshot_id": getattr(cycle, "snapshot_id", None), "tag": getattr(cycle, "tag", None),
            "members": summary.members, "lead_steps": summary.lead_steps}


def verified_init_times(store: str | Path) -> set[pd.Timestamp]:
    from pipeline.forecast_store import ForecastStore

    try:
        table = ForecastStore.open(store).table(TABLE)
    except UserError:
        return set()
    return {pd.Timestamp(t) for t in table["init_time"].values}


def pending_verification(*, analysis: str | Path, store: str | Path) -> list[str]:
    """ISO init times whose truth has arrived and that are not verified yet (oldest first)."""
    from pipeline.forecast_store import ForecastStore

    if not Path(store).exists() and "://" not in str(store):
        return []
    fs = ForecastStore.open(store)
    inits = [pd.Timestamp(t) for t in fs.init_times()]
    if not inits:
        return []
    leads = pd.TimedeltaIndex(fs.dataset()["lead_time"].values)
    have = set(analysis_times(analysis))
    done = verified_init_times(store)
    ready = [t for t in inits if t not in done and all(t + lead in have for lead in leads)]
    return [t.isoformat() for t in sorted(ready)]


def score_cycle(*, analysis: str | Path, store: str | Path, init_time: str) -> dict[str, Any]:
    """Scores of one cycle (see module) as JSON-able lists ``[channel][lead]``."""
    from pipeline.forecast_store import ForecastStore
    from pipeline.weather import baselines
    from pipeline.weather.metrics import score_system
    from pipeline.weather.store import open_training_store

    forecast = ForecastStore.open(store).dataset(init_time=init_time)
    if "init_time" not in forecast.dims:
        forecast = forecast.expand_dims("init_time")
    variables = [str(v) for v in forecast.data_vars]
    forecast = forecast.load()
    leads = forecast["lead_time"].values
    init = pd.DatetimeIndex(forecast["init_time"].values)
    needed = init.append(pd.DatetimeIndex([t + lead for t in init for lead in pd.TimedeltaIndex(leads)])).unique()
    truth = open_training_store(analysis)[variables].sel(time=needed.sort_values().values).load()  # small, in memory
    scores, _ = score_system(forecast, truth, variables=variables)
    persistence = baselines.persistence(truth, init_times=init, lead_times=leads)
    p_scores, _ = score_system(persistence, truth, variables=variables)
    channels = list(scores["crps"])
    row: dict[str, Any] = {"init_time": init_time, "channels": channels,
                           "lead_hours": (pd.TimedeltaIndex(leads).total_seconds() / 3600).tolist()}
    for metric in METRICS:
        row[metric] = [scores[metric][c] for c in channels]
    row["crps_persistence"] = [p_scores["crps"][c] for c in channels]
    return row


def rows_to_dataset(rows: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    """Rows of :func:`score_cycle` → the verification table dataset."""
    import xarray as xr

    rows = sorted(rows, key=lambda r: pd.Timestamp(r["init_time"]))
    channels = rows[0]["channels"]
    leads = pd.to_timedelta(rows[0]["lead_hours"], unit="h")
    data = {}
    for name in (*METRICS, "crps_persistence"):
        values = np.array([[[np.nan if v is None else v for v in per_lead] for per_lead in r[name]] for r in rows],
                          dtype=np.float64)
        data[name] = (("init_time", "channel", "lead_time"), values)
    return xr.Dataset(data, coords={"init_time": pd.DatetimeIndex([r["init_time"] for r in rows]).values,
                                    "channel": np.array(channels, dtype=object), "lead_time": leads.values})


def append_verification(*, store: str | Path, rows: list[dict[str, Any]], provenance: dict[str, Any]) -> dict[str, Any]:
    """Merge ``rows`` into the verification table in one commit; returns counts and the snapshot id."""
    import xarray as xr

    from pipeline.forecast_store import ForecastStore

    done = verified_init_times(store)
    fresh = [r for r in rows if pd.Timestamp(r["init_time"]) not in done]
    if not fresh:
        return {"added": 0, "total": len(done), "snapshot_id": None}
    fs = ForecastStore.open(store)
    new = rows_to_dataset(fresh)
    if done:
        old = fs.table(TABLE).load()
        new = xr.concat([old[list(new.data_vars)], new], dim="init_time").sortby("init_time")
    sid = fs.write_table(TABLE, new, message=f"verify {len(fresh)} cycle(s): "
                         + ", ".join(r["init_time"] for r in fresh), provenance=provenance)
    return {"added": len(fresh), "total": int(new.sizes["init_time"]), "snapshot_id": sid}


# -- the operations: workflows over Steps (flows/ runs them as Prefect flows; LocalSteps in this process) -------


def extend_analysis(*, analysis: str, hours: float) -> dict[str, Any]:
    """New analyses arrive: continue the embedded atmosphere ``hours`` and append them (atomic block)."""
    from pipeline.weather.simulate.extend import extend_simulation

    result = extend_simulation(analysis, hours=hours)
    return {"path": analysis, "added": result.added, "last_time": result.last_time}


def ingest_recipe(*, recipe: str, out: str) -> str:
    """Run an ingest recipe into the analysis store (written beside, then renamed into place)."""
    from pipeline.config import load_config
    from pipeline.weather.ingest import ingest
    from pipeline.weather.recipe import Recipe

    ingest(load_config(Recipe, recipe), out, overwrite=True, progress=False, recipe_path=recipe)
    return out


def resolve_cycle(*, analysis: str, store: str, registry: str) -> dict[str, Any]:
    """The init time to forecast (or None) and the current model; a missing input raises (then retries)."""
    from pipeline.registry import current_model

    model = current_model(registry)
    return {"init_time": next_cycle(analysis=analysis, store=store), "checkpoint": model.checkpoint,
            "model": model.name, "sha256": model.sha256}


def analysis_fingerprint(analysis: str) -> str:
    """The analysis store's data snapshot id (see :func:`pipeline.weather.store.data_fingerprint`), or ``missing``."""
    from pipeline.weather.store import data_fingerprint, open_training_store

    return data_fingerprint(open_training_store(analysis), analysis) if Path(analysis).exists() else "missing"


def _ingest_steps(steps: Steps, *, analysis: str, extend_hours: float, recipe: str | None) -> list[str]:
    """Re-ingest ``recipe`` (cached on its text) and/or extend the embedded atmosphere; returns the new times."""
    if recipe:
        text = Path(recipe).read_text() if Path(recipe).exists() else "missing"
        steps.run("ingest-recipe", ingest_recipe, recipe=recipe, out=analysis, label=f"recipe={recipe}",
                  retries=IO_RETRIES, cache_key=[text, analysis], valid=lambda out: Path(out).exists())
    if extend_hours:
        return steps.run("extend-analysis", extend_analysis, analysis=analysis, hours=extend_hours,
                         label=f"{extend_hours:g}h", retries=IO_RETRIES)["added"]
    return []


def ingest(steps: Steps, *, analysis: str, extend_hours: float = 0.0, recipe: str | None = None) -> dict[str, Any]:
    """Bring the analysis store up to date: run ``recipe`` (real data) or, on the embedded atmosphere, extend
    the simulation by ``extend_hours``. Returns the store path, the new times and its data fingerprint."""
    added = _ingest_steps(steps, analysis=analysis, extend_hours=extend_hours, recipe=recipe)
    return {"path": analysis, "added": added, "fingerprint": analysis_fingerprint(analysis)}


def train_model(*, config: dict[str, Any], out: str, on_progress: Callable[[float], None]) -> dict[str, Any]:
    """Train (or resume) a weather model into run directory ``out`` (``config``: WeatherTrainConfig fields)."""
    from pipeline.runs import fingerprint
    from pipeline.weather.modeling.train import WeatherTrainConfig, train_weather

    cfg = WeatherTrainConfig.model_validate(config)
    result = train_weather(cfg, out=out, progress=False, on_step=lambda step: on_progress(step / cfg.train.steps))
    return {"run": out, "step": result.step, "stopped": result.stopped, "checkpoint": fingerprint(out, "run")}


def promote_model(*, run: str, registry: str, name: str | None) -> str:
    """Register the newest checkpoint of ``run`` as current; returns its registry name."""
    from pipeline.registry import promote

    return promote(run, registry=registry, name=name).name


def train(steps: Steps, *, data: str, out: str, config: dict[str, Any] | None = None, promote_to: str | None = None,
          promote_name: str | None = None) -> dict[str, Any]:
    """Train a weather model on the store ``data`` (``config``: WeatherTrainConfig fields; cached on the config,
    the data's fingerprint and the output); with ``promote_to`` (a registry directory) the result becomes the
    current model."""
    from pipeline.runs import fingerprint

    cfg = {**(config or {}), "data": data}
    result = steps.run("train-weather", train_model, config=cfg, out=out, label=f"out={out}", progress=True,
                       cache_key=[cfg, analysis_fingerprint(data), str(Path(out).resolve())],
                       valid=lambda r: fingerprint(r["run"], "run") == r["checkpoint"])
    if promote_to:
        result["promoted"] = steps.run("promote", promote_model, run=out, registry=promote_to, name=promote_name,
                                       label=f"registry={promote_to}")
    return result


def forecast_cycle(steps: Steps, *, analysis: str, store: str, registry: str, members: int = 4, lead: str = "1d",
                   sampler: str = "euler", sampler_steps: int = 2, extend_hours: float = 0.0,
                   recipe: str | None = None, verify_after: bool = True, seed: int = 0) -> dict[str, Any]:
    """One operational cycle: ingest new analyses (``recipe`` re-ingests real data into the analysis store;
    ``extend_hours`` simulates them on the embedded atmosphere), forecast the newest unforecast init time with
    the current model, commit it; then verify every cycle whose truth has arrived (``verify_after``). Running
    it again with no new data adds nothing."""
    summary: dict[str, Any] = {"analysis": analysis, "store": store}
    added = _ingest_steps(steps, analysis=analysis, extend_hours=extend_hours, recipe=recipe)
    if added:
        summary["ingested"] = added
    plan = steps.run("resolve-cycle", resolve_cycle, analysis=analysis, store=store, registry=registry,
                     label=analysis, retries=IO_RETRIES)
    summary["model"] = plan["model"]
    if plan["init_time"] is None:
        summary["cycle"] = {"action": "up-to-date"}
        log.info("forecast store %s already holds the newest analysis; nothing to do", store)
    else:
        # an existing cycle is skipped by the store itself, so this step needs no cache
        summary["cycle"] = steps.run("forecast", run_cycle, analysis=analysis, store=store,
                                     checkpoint=plan["checkpoint"], init_time=plan["init_time"], members=members,
                                     lead=lead, sampler=sampler, sampler_steps=sampler_steps, seed=seed,
                                     label=plan["init_time"], retries=IO_RETRIES)
    if verify_after:
        summary["verification"] = verify(steps, analysis=analysis, store=store)
    steps.publish("forecast-cycle-report", markdown=cycle_markdown(summary), description="What this forecast cycle did")
    return summary


def cycle_markdown(summary: dict[str, Any]) -> str:
    """What a forecast cycle did, as Markdown."""
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


def verify(steps: Steps, *, analysis: str, store: str) -> dict[str, Any]:
    """Score every cycle whose truth has arrived and is not yet verified (one step per cycle, fanned out where
    the runner can) and append them to the store's ``verification`` table in one commit."""
    pending = steps.run("pending-verification", pending_verification, analysis=analysis, store=store, label=store,
                        retries=IO_RETRIES)
    rows = steps.map("score-cycle", _score, pending, analysis=analysis, store=store, retries=IO_RETRIES)
    provenance = {"source": "velocast verify", "config": {"analysis": analysis, "store": store},
                  "checkpoint": None, "data_snapshot": analysis_fingerprint(analysis)}
    if rows:
        result = steps.run("append-verification", append_verification, store=store, rows=rows, provenance=provenance,
                           label=f"{len(rows)} cycles", retries=IO_RETRIES)
        table = [{"init_time": r["init_time"], "channel": c, "lead_h": r["lead_hours"][-1], "crps": r["crps"][i][-1],
                  "crps_persistence": r["crps_persistence"][i][-1]} for r in rows for i, c in enumerate(r["channels"])]
        steps.publish("verification-latest", table=table,
                      description="CRPS at the longest lead of the cycles verified in this run")
    else:
        result = {"added": 0, "total": len(verified_init_times(store)), "snapshot_id": None}
    result["verified"] = [r["init_time"] for r in rows]
    return result


def _score(init_time: str, *, analysis: str, store: str) -> dict[str, Any]:
    return score_cycle(analysis=analysis, store=store, init_time=init_time)
