"""The weather operations flows in-process against the shared real Prefect server: verification fanned out on
a Dask task runner, the cycle's failure on a missing input, and extending the embedded atmosphere (the
cycle's idempotence runs through deployments in test_deploy.py; the end-to-end run in test_runs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.flows.conftest import LEAD, task_states


def test_verify_fans_out_over_cycles_on_a_dask_runner_and_never_duplicates(pipeline_run, tmp_path) -> None:
    """`verify` on a DaskTaskRunner (LocalCluster) scores every cycle of the pipeline's forecast store whose
    truth is in the analysis store, one task per cycle, and writes them to the verification table in one
    commit; verifying again adds no row and no commit."""
    import shutil

    import numpy as np
    from prefect_dask import DaskTaskRunner

    from flows.operations import verify
    from pipeline.forecast_store import ForecastStore

    store = tmp_path / "forecast.icechunk"
    shutil.copytree(Path(pipeline_run["out"]) / "forecast.icechunk", store)
    analysis = str(Path(pipeline_run["out"]) / "atmosphere.zarr")
    inits = [str(np.datetime_as_string(t, unit="s")) for t in ForecastStore.open(store).init_times()]
    dask_verify = verify.with_options(task_runner=DaskTaskRunner(
        cluster_kwargs={"n_workers": 1, "threads_per_worker": 2, "processes": False, "dashboard_address": None}))
    state = dask_verify(analysis, str(store), return_state=True)
    result = state.result()
    assert result["added"] == len(inits) == 2 and [t[:19] for t in result["verified"]] == inits
    names = task_states(state.state_details.flow_run_id)
    assert sorted(n for n in names if n.startswith("score-cycle-")) == sorted(f"score-cycle-{t}" for t in result["verified"])
    table = ForecastStore.open(store).table("verification")
    assert table["crps"].dims == ("init_time", "channel", "lead_time") and bool((table["crps"] > 0).all())
    commits = len(ForecastStore.open(store).snapshots())
    assert verify(analysis, str(store))["added"] == 0
    assert ForecastStore.open(store).table("verification").sizes["init_time"] == 2
    assert len(ForecastStore.open(store).snapshots()) == commits


def test_missing_input_retries_then_fails_naming_the_step(weather_ops, tmp_path) -> None:
    """With no current model in the registry, the cycle's resolve step is retried and then fails with a
    message naming the step and the input; nothing is written to the forecast store."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.operations import forecast_cycle

    state = forecast_cycle(weather_ops["analysis"], weather_ops["store"], str(tmp_path / "empty-registry"),
                           lead=LEAD, return_state=True)
    assert state.is_failed()
    message = str(state.message) + str(state.result(raise_on_failure=False))
    assert "resolve-cycle" in message and "no current model" in message and "velocast model promote" in message
    assert not Path(weather_ops["store"]).exists()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    resolve = [r for r in runs if r.name.startswith("resolve-cycle")]
    assert resolve and resolve[0].run_count == 3  # 1 try + VELOCAST_FLOW_RETRIES=2 retries


def test_extend_simulation_appends_consistent_times(weather_ops) -> None:
    """The `ingest` flow extends the embedded atmosphere: 6-hourly times are appended to the fields and the
    model state, the store's attributes (normalisation) are kept, the run continues smoothly from the last
    state, and the data fingerprint changes."""
    import numpy as np
    import xarray as xr

    from flows.operations import ingest
    from pipeline.weather.operations import analysis_fingerprint
    from pipeline.weather.simulate.extend import extend_simulation
    from pipeline.weather.store import load_stats, open_training_store

    before = open_training_store(weather_ops["analysis"])
    n = before.sizes["time"]
    fingerprint = analysis_fingerprint(weather_ops["analysis"])
    result = ingest(weather_ops["analysis"], extend_hours=6)
    assert result["fingerprint"] != fingerprint
    after = open_training_store(weather_ops["analysis"])
    states = xr.open_zarr(weather_ops["analysis"], group="model_state")
    assert after.sizes["time"] == n + 1 == states.sizes["time"]
    assert result["added"] == [str(np.datetime_as_string(after["time"].values[-1], unit="s"))]
    assert after["time"].values[-1] - after["time"].values[-2] == np.timedelta64(6, "h")
    assert load_stats(after) == load_stats(before)
    step = float(abs(after["temperature"].isel(time=-1) - after["temperature"].isel(time=-2)).mean())
    assert 0 < step < 3.0  # a 6-hour change, not a restart from rest
    with pytest.raises(Exception, match="whole number"):
        extend_simulation(weather_ops["analysis"], hours=5)


def test_the_cycle_runs_in_this_process_without_prefect(weather_ops, capsys) -> None:
    """`velocast run cycle --runner local` runs the same operation with LocalSteps: it commits the newest
    analysis as one cycle, and a second run with no new analysis adds nothing."""
    import json

    from pipeline.cli import main
    from pipeline.forecast_store import ForecastStore

    args = ["run", "cycle", "--runner", "local", "--analysis", weather_ops["analysis"], "--store", weather_ops["store"],
            "--registry", weather_ops["registry"], "--lead", LEAD, "--members", "2", "--sampler", "euler", "--steps", "1"]
    for expected in ("written", "up-to-date"):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["cycle"]["action"] == expected and summary["model"] == "tiny"
    assert len(ForecastStore.open(weather_ops["store"]).init_times()) == 1
