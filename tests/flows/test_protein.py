"""The protein pipeline flow at toy size on the shared Prefect server: every stage a task, report
artifacts, a fully cached re-run, and a stage whose output was deleted is recomputed, not served stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.flows.test_weather import _artifacts, _task_states

TINY = {
    "train_ns": 0.02, "train_replicas": 1, "reference_ns": 0.02, "reference_replicas": 1, "samples": 50,
    "sampler": "euler", "sampler_steps": 2, "lag_ps": 2.0, "forecast_steps": 3, "forecast_members": 2,
    "network": {"hidden": 16, "depth": 1, "time_dim": 8},
    "ensemble_train": {"steps": 4, "batch_size": 8, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 4},
    "forecast_train": {"steps": 4, "batch_size": 8, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 4},
}


def _completed_task_names(flow_run_id) -> set[str]:
    """Names of the task runs of a flow run that ran (state Completed, not Cached)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name for r in runs if r.state.name == "Completed"}


@pytest.mark.timeout(300)
def test_protein_pipeline_runs_caches_and_recomputes_deleted_outputs(prefect_server, tmp_path, monkeypatch) -> None:
    """MD → train → sample/forecast → evaluate completes with metrics.json and report artifacts; a second
    run takes all 7 stages from the cache; after deleting the samples, the sample stage runs again (its
    cached result points at a missing store) while MD and training stay cached."""
    from flows.protein import protein_pipeline

    monkeypatch.setenv("VELOCAST_CACHE", str(tmp_path / "cache"))
    out = str(tmp_path / "run")
    state = protein_pipeline(out, config=TINY, return_state=True)
    assert state.is_completed(), state
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    assert "forecast" in metrics and (Path(out) / "samples" / "samples.zarr").exists()
    assert {"protein-report", "protein-headline", "protein-pipeline-timings",
            "train-progress-protein-ensemble"} <= set(_artifacts(state.state_details.flow_run_id))

    again = protein_pipeline(out, config=TINY, return_state=True)
    states = _task_states(again.state_details.flow_run_id)
    assert sorted(states.values()) == ["Cached"] * 7, states

    shutil.rmtree(Path(out) / "samples")
    third = protein_pipeline(out, config=TINY, return_state=True)
    assert third.is_completed() and (Path(out) / "samples" / "samples.zarr").exists()
    ran = _completed_task_names(third.state_details.flow_run_id)
    assert any(name.startswith("sample-") for name in ran)
    assert not any(name.startswith(("md-", "train-")) for name in ran)
