"""infra/: template checks (no SLURM, Docker engine or remote Prefect here: the files are parsed and checked
for what they must contain) and a real 2-process CPU torchrun of `velocast train weather`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
REPO = INFRA.parent


def test_prefect_yaml_template_declares_cycle_and_verify_deployments() -> None:
    """Template check: infra/prefect.yaml is valid YAML whose deployments point at real flow entrypoints,
    run on the process pool `velocast`, every 6 h (cycle) and daily (verify), with parameters the flows
    accept."""
    import inspect

    from flows import operations

    spec = yaml.safe_load((INFRA / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {"velocast-cycle", "velocast-verify"}
    crons = {name: [s["cron"] for s in d["schedules"]] for name, d in deployments.items()}
    assert crons == {"velocast-cycle": ["0 */6 * * *"], "velocast-verify": ["30 0 * * *"]}
    for d in deployments.values():
        path, func = d["entrypoint"].split(":")
        assert (REPO / path).exists()
        params = set(inspect.signature(getattr(operations, func).fn).parameters)
        assert set(d["parameters"]) <= params, set(d["parameters"]) - params
        assert d["work_pool"]["name"] == "velocast"


def test_dask_slurm_template_builds_a_slurm_job_script(tmp_path, monkeypatch) -> None:
    """Template check: the dask-jobqueue YAML loads into SLURMCluster arguments and dask-jobqueue renders
    an sbatch job script from them (no SLURM here: the script is only generated, never submitted)."""
    sys.path.insert(0, str(REPO))
    try:
        from infra.dask_slurm import load_settings
    finally:
        sys.path.remove(str(REPO))
    from dask_jobqueue.slurm import SLURMJob

    cluster_kwargs, adapt = load_settings(INFRA / "dask_slurm.yaml")
    assert adapt["maximum_jobs"] >= adapt["minimum_jobs"] >= 1
    monkeypatch.chdir(tmp_path)  # the job creates its log directory relative to the working directory
    job = SLURMJob(scheduler="tcp://127.0.0.1:8786", **cluster_kwargs)
    script = job.job_script()
    assert script.startswith("#!/usr/bin/env bash") and "#SBATCH -p compute" in script
    assert "#SBATCH -J velocast-dask" in script
    assert "#SBATCH --mem=" in script and "source $HOME/velocast/.venv/bin/activate" in script
    assert "distributed.cli.dask_worker" in script or "dask worker" in script or "dask-worker" in script


def test_sbatch_torchrun_template_is_valid_bash_and_runs_torchrun() -> None:
    """Template check: the sbatch script passes `bash -n`, declares nodes/GPUs, and launches
    `torch.distributed.run ... -m pipeline train weather` with a c10d rendezvous."""
    path = INFRA / "train_torchrun.sbatch"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    assert re.search(r"^#SBATCH --nodes=\d+", text, re.M) and "#SBATCH --gpus-per-node" in text
    assert "python -m torch.distributed.run" in text and "-m pipeline train weather" in text
    assert "--rdzv-backend c10d" in text


def test_dockerfile_and_compose_templates() -> None:
    """Template check: the Dockerfile starts FROM python:3.11-slim and installs velocast with
    `pip install -e .[all]`; the compose file has a Prefect server, a worker on the velocast pool and the
    `velocast serve` query service."""
    instructions = [line.split(None, 1) for line in (INFRA / "Dockerfile").read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith("#") and not line.startswith((" ", "\t"))]
    keywords = [parts[0].upper() for parts in instructions]
    assert keywords[0] == "FROM" and instructions[0][1].strip() == "python:3.11-slim"
    assert {"WORKDIR", "COPY", "RUN", "ENTRYPOINT"} <= set(keywords)
    assert 'pip install -e ".[all]"' in (INFRA / "Dockerfile").read_text()
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())
    services = compose["services"]
    assert {"prefect-server", "worker", "query"} <= set(services)
    assert services["worker"]["command"][:4] == ["worker", "start", "--pool", "velocast"]
    assert services["query"]["command"][0] == "serve"
    assert services["worker"]["environment"]["PREFECT_API_URL"].startswith("http://prefect-server:4200")


@pytest.mark.timeout(240)
def test_torchrun_two_cpu_processes_train_and_checkpoint_once(weather_base, tmp_path) -> None:
    """`python -m torch.distributed.run --nproc-per-node 2 -m pipeline train weather` on the tiny analysis
    store: both ranks finish, the run has exactly one checkpoint at the last step, and rank 0 alone wrote
    the metrics."""
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "network": {"base_channels": 8, "channel_mults": [1, 2], "blocks_per_level": 1, "attention": False},
        "train": {"steps": 2, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "log_every": 1,
                  "checkpoint_every": 0, "validate_every": 0, "device": "cpu",
                  # cond_dropout > 0 keeps the network's null embedding in the graph: with 0 it gets no
                  # gradient and DDP stops ("parameters that were not used in producing loss").
                  "cond_dropout": 0.1},
    }))
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "pipeline", "train", "weather", "--data", weather_base["analysis"], "--out", str(run),
         "--config", str(config), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=220, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = sorted((run / "checkpoints").glob("step_*"))
    assert [c.name for c in checkpoints] == ["step_00000002"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == [1, 2]
