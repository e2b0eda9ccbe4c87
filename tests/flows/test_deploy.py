"""Deployments against a real local Prefect server: registered on a process work pool, executed by a real
``prefect worker`` subprocess; a triggered cycle commits and later verifies; triggering again adds nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.flows.conftest import LEAD


@pytest.fixture
def worker(prefect_server):
    """A real process worker on the pool ``velocast-test`` (polling every second)."""
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
    from flows.deploy import ensure_work_pool

    ensure_work_pool("velocast-test")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", "velocast-test",
                             "--type", "process", "--limit", "1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    yield proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _trigger(name: str, parameters: dict | None = None):
    from prefect.deployments import run_deployment

    run = run_deployment(name, parameters=parameters or {}, timeout=240, poll_interval=1)
    assert run.state is not None and run.state.is_completed(), f"{name}: {run.state}"
    return run


@pytest.mark.timeout(420)
def test_deployments_run_on_a_worker_commit_verify_and_are_idempotent(prefect_server, worker, weather_ops) -> None:
    """`register` creates the 6-hourly cycle and the daily verify deployment (with their crons) on a process
    pool; after new analyses arrive, a triggered cycle run (executed by a real worker subprocess) commits the
    newest cycle and verifies the earlier one whose truth has arrived; triggering again adds no commit and no
    verification row."""
    from prefect.client.orchestration import get_client

    from flows.deploy import CYCLE_DEPLOYMENT, VERIFY_DEPLOYMENT, DeploySettings, register
    from pipeline.forecast_store import ForecastStore

    settings = DeploySettings(analysis=weather_ops["analysis"], store=weather_ops["store"],
                              registry=weather_ops["registry"], work_pool="velocast-test", members=3, lead=LEAD,
                              sampler="euler", sampler_steps=1, paused=True)
    ids = register(settings)
    assert set(ids) == {f"forecast-cycle/{CYCLE_DEPLOYMENT}", f"verify/{VERIFY_DEPLOYMENT}"}
    with get_client(sync_client=True) as client:
        cycle = client.read_deployment_by_name(f"forecast-cycle/{CYCLE_DEPLOYMENT}")
        check = client.read_deployment_by_name(f"verify/{VERIFY_DEPLOYMENT}")
    assert cycle.work_pool_name == "velocast-test"
    assert [s.schedule.cron for s in cycle.schedules] == ["0 */6 * * *"]
    assert [s.schedule.cron for s in check.schedules] == ["30 0 * * *"]

    # An earlier cycle exists and 12 h of new analyses have arrived since (in-process, same server).
    from flows.operations import forecast_cycle
    from pipeline.weather.simulate.extend import extend_simulation

    earlier = forecast_cycle(**settings.cycle_parameters(), verify_after=False)["cycle"]["init_time"]
    extend_simulation(weather_ops["analysis"], hours=12)

    t0 = time.monotonic()
    _trigger(f"forecast-cycle/{CYCLE_DEPLOYMENT}")
    store = ForecastStore.open(weather_ops["store"])
    assert len(store.init_times()) == 2  # the new newest analysis was forecast and committed
    assert [str(t)[:19] for t in store.table("verification")["init_time"].values] == [earlier[:19]]
    snapshots = len(store.snapshots())

    _trigger(f"forecast-cycle/{CYCLE_DEPLOYMENT}")  # no new data: nothing to add
    store = ForecastStore.open(weather_ops["store"])
    assert len(store.init_times()) == 2 and len(store.snapshots()) == snapshots
    assert store.table("verification").sizes["init_time"] == 1
    print(f"2 deployment runs in {time.monotonic() - t0:.1f} s")
