"""The operational forecast cycle and its verification loop (the science under ``flows/``).

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

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import UserError

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
    from pipeline.weather.metrics import score_system
    from pipeline.forecast_store import ForecastStore
    from pipeline.weather import baselines
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
