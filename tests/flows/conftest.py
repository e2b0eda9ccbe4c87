"""Fixtures for the flow tests (the session's one real Prefect server is ``prefect_server`` of
``tests/conftest.py``): a tiny end-to-end weather run, its analysis store and a tiny trained model promoted in
a registry."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

LEAD = "12h"


def tiny_run_config() -> dict:
    """RunWeatherConfig for a seconds-long end-to-end run: ~3 simulated days, 4 training steps."""
    from pipeline.weather.run import RUN

    train = {"steps": 4, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 4,
             "validate_every": 0}
    return RUN.config.model_validate({
        "train_days": 1.5, "spinup_days": 0.25, "validation_days": 1.0, "init_times": 2, "init_spacing_hours": 6,
        "lead_days": 0.5, "members": 3, "sampler": "euler", "sampler_steps": 1,
        "calibration_init_times": 1, "calibration_members": 2, "calibration_noise_scales": [0.6, 0.9],
        "network": {"base_channels": 8, "channel_mults": [1, 2], "blocks_per_level": 1, "attention": False},
        "train": train, "deterministic_train": {**train, "steps": 2},
        "validation": {"init_times": 1, "members": 2, "lead_steps": 1, "sampler_steps": 1},
    }).model_dump(mode="json")


@pytest.fixture(scope="session")
def pipeline_run(prefect_server, tmp_path_factory) -> dict:
    """The end-to-end ``weather-pipeline`` flow run once at tiny size (its outputs feed the other tests)."""
    import time

    root = tmp_path_factory.mktemp("weather-pipeline")
    os.environ["VELOCAST_CACHE"] = str(root / "cache")
    from flows.runs import run_flow

    start = time.monotonic()
    state = run_flow("weather")(str(root / "run"), config=tiny_run_config(), return_state=True)
    return {"out": str(root / "run"), "state": state, "seconds": time.monotonic() - start}


@pytest.fixture(scope="session")
def weather_base(pipeline_run, tmp_path_factory) -> dict[str, str]:
    """The pipeline's analysis store and a model trained on it by the ``train`` flow, which promotes it as
    current in a fresh registry."""
    from flows.operations import train

    out = Path(pipeline_run["out"])
    root = tmp_path_factory.mktemp("ops")
    config = {k: v for k, v in tiny_run_config().items() if k in ("network", "train")}
    result = train(str(out / "atmosphere.zarr"), str(root / "run"), config=config, promote_to=str(root / "registry"),
                   promote_name="tiny")
    assert result["promoted"] == "tiny"
    return {"analysis": str(out / "atmosphere.zarr"), "run": str(root / "run"), "registry": str(root / "registry")}


@pytest.fixture
def weather_ops(weather_base, tmp_path) -> dict[str, str]:
    """A private copy of the analysis store (tests extend it) plus the shared registry and a store path."""
    analysis = tmp_path / "analysis.zarr"
    shutil.copytree(weather_base["analysis"], analysis)
    return {**weather_base, "analysis": str(analysis), "store": str(tmp_path / "forecast.icechunk")}


def artifacts(flow_run_id) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found if a.key}


def task_states(flow_run_id) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name: r.state.name for r in runs}
