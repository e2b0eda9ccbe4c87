"""Dask on SLURM for velocast's out-of-core work (ingest, evaluation) and Prefect fan-out.

Ingest with a SLURM-backed Dask cluster::

    python infra/dask_slurm.py --jobs 4                      # prints the scheduler address, keeps it up
    velocast ingest weather recipe.yaml --out era5.zarr --dask-address tcp://HOST:8786

Fan Prefect tasks (verification per cycle) out over SLURM jobs::

    from infra.dask_slurm import slurm_task_runner
    from flows.operations import verify
    verify.with_options(task_runner=slurm_task_runner())(analysis, store)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import yaml

CONFIG = Path(__file__).with_name("dask_slurm.yaml")


def load_settings(path: Path = CONFIG) -> tuple[dict[str, Any], dict[str, Any]]:
    """(SLURMCluster keyword arguments, adapt keyword arguments) from the YAML file."""
    raw = yaml.safe_load(path.read_text())
    slurm = {k.replace("-", "_"): v for k, v in raw["jobqueue"]["slurm"].items() if v is not None}
    return slurm, dict(raw.get("adapt") or {})


def make_cluster(path: Path = CONFIG, *, jobs: int | None = None):  # type: ignore[no-untyped-def]
    """A dask_jobqueue.SLURMCluster from the settings: ``jobs`` fixed jobs, else adaptive."""
    from dask_jobqueue import SLURMCluster

    cluster_kwargs, adapt_kwargs = load_settings(path)
    cluster = SLURMCluster(**cluster_kwargs)
    if jobs:
        cluster.scale(jobs=jobs)
    else:
        cluster.adapt(**adapt_kwargs)
    return cluster


def slurm_task_runner(path: Path = CONFIG):  # type: ignore[no-untyped-def]
    """A prefect-dask DaskTaskRunner that starts the SLURMCluster for the flow run and adapts it."""
    from prefect_dask import DaskTaskRunner

    cluster_kwargs, adapt_kwargs = load_settings(path)
    return DaskTaskRunner(cluster_class="dask_jobqueue.SLURMCluster", cluster_kwargs=cluster_kwargs,
                          adapt_kwargs=adapt_kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description="Start a SLURM-backed Dask cluster and print its address.")
    parser.add_argument("--config", type=Path, default=CONFIG, help="dask-jobqueue YAML (default: beside this file)")
    parser.add_argument("--jobs", type=int, default=None, help="fixed number of SLURM jobs (default: adaptive)")
    parser.add_argument("--print-job-script", action="store_true", help="print the sbatch script and exit")
    args = parser.parse_args()
    if args.print_job_script:
        from dask_jobqueue import SLURMCluster

        with SLURMCluster(**load_settings(args.config)[0]) as cluster:
            print(cluster.job_script())
        return
    cluster = make_cluster(args.config, jobs=args.jobs)
    print(f"scheduler: {cluster.scheduler_address}  dashboard: {cluster.dashboard_link}", flush=True)
    try:
        while True:
            time.sleep(60)
    except KeyboardInterrupt:
        cluster.close()


if __name__ == "__main__":
    main()
