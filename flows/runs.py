"""Any domain's run as a Prefect flow of cached tasks, built from its stage list; no domain knowledge here.

:func:`run_flow` turns a :class:`~pipeline.runs.RunSpec` into the flow ``<domain>-pipeline``: one task per
stage (named after it), cached on the stage's key (:meth:`RunSpec.stage_key`, results persisted as JSON,
no pickle), retried ``stage.retries`` times with exponential backoff, with a progress artifact per stage.
A cached result whose outputs changed since (deleted, replaced) is recomputed. The task body is
:func:`pipeline.runs.execute_stage`, which the in-process runner calls too, so both runners share the
record in ``RUN/run.json``. The flow publishes the per-stage timing table, the report (Markdown), the
headline table and the first plot as artifacts.

:func:`run_with_prefect` is the ``prefect`` runner of ``velocast run``: it uses ``PREFECT_API_URL`` when
set (and reachable), and otherwise starts a temporary local server, waiting up to
``$VELOCAST_PREFECT_START_TIMEOUT`` seconds (default 180) with a message, instead of Prefect's 20 s.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from flows.common import progress_artifact
from pipeline.domains import get_domain, resolve
from pipeline.runs import RunnerUnavailable, RunResult, RunSpec, StageContext, StageOutcome, execute_stage, prepare_run
from pipeline.runs import display as run_display
from pipeline.runs.execute import current_outputs
from pipeline.runs.record import run_lock

START_TIMEOUT_ENV = "VELOCAST_PREFECT_START_TIMEOUT"


def spec_of(domain: str) -> RunSpec:
    """The registered domain's run declaration."""
    return resolve(get_domain(domain).run)


def _stage_key(context: Any, parameters: dict[str, Any]) -> str:
    spec = spec_of(parameters["domain"])
    config = spec.config.model_validate(parameters["config"])
    return spec.stage_key(spec.stage(parameters["stage"]), config, spec.layout(parameters["out"]))


def _execute(domain: str, stage: str, config: dict[str, Any], out: str, progress: bool, refresh: bool) -> dict:
    """The body of every stage task: :func:`pipeline.runs.execute_stage`, as JSON."""
    spec = spec_of(domain)
    cfg = spec.config.model_validate(config)
    context = StageContext(progress=progress, on_progress=progress_artifact(f"progress-{stage}", f"{stage} progress"))
    outcome = execute_stage(spec, spec.stage(stage), cfg, spec.layout(out), refresh=refresh, context=context)
    context.on_progress(1.0)
    return outcome.to_json()


@lru_cache(maxsize=None)
def run_flow(domain: str) -> Any:
    """The Prefect flow ``<domain>-pipeline(out, config=None, quick=False, refresh=False, progress=False)``;
    returns the path of ``run.json``."""
    from prefect import flow, task
    from prefect.tasks import exponential_backoff

    from flows.common import BACKOFF_S, StepTimer, publish_summary

    spec = spec_of(domain)
    tasks = {}
    for stage in spec.stages:
        retries = {"retries": stage.retries, "retry_delay_seconds": exponential_backoff(backoff_factor=BACKOFF_S),
                   "retry_jitter_factor": 0.2} if stage.retries else {}
        tasks[stage.name] = task(_execute, name=stage.name, task_run_name=stage.name, cache_key_fn=_stage_key,
                                 persist_result=True, result_serializer="json", **retries)

    @flow(name=f"{domain}-pipeline", log_prints=True, description=spec.description)
    def pipeline_flow(out: str, config: dict[str, Any] | None = None, quick: bool = False, refresh: bool = False,
                      progress: bool = False) -> list[dict[str, Any]]:
        cfg = spec.configure("quick" if quick else None, config)
        layout = prepare_run(spec, cfg, out)
        cfg_json = cfg.model_dump(mode="json")
        timer = StepTimer(f"{domain}-pipeline")
        outcomes = []
        with run_lock(layout.root):
            for number, stage in enumerate(spec.stages, 1):
                with timer.step(stage.name, label=f"out={out}"):
                    run_display.stage_started(number, len(spec.stages), stage)
                    args = (domain, stage.name, cfg_json, out, progress, refresh)
                    stage_task = tasks[stage.name]
                    state = (stage_task.with_options(refresh_cache=True) if refresh else stage_task)(
                        *args, return_state=True)
                    result = state.result()
                    if not refresh and result["outputs"] != current_outputs(stage, layout):
                        state = stage_task.with_options(refresh_cache=True)(*args, return_state=True)  # outputs changed
                        result = state.result()
                    cached = result["cached"] or state.name == "Cached"
                    outcomes.append({**result, "cached": cached, "seconds": 0.0 if cached else result["seconds"]})
                    run_display.stage_finished(number, len(spec.stages), stage.name, cached=cached,
                                               seconds=outcomes[-1]["seconds"])
        publish_summary(domain, spec.summary(layout), timer)
        return outcomes

    return pipeline_flow


def _api_reachable(url: str, timeout: float = 10.0) -> bool:
    import httpx

    try:
        return httpx.get(f"{url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_api() -> str:
    """A Prefect API to run against: ``PREFECT_API_URL`` (checked), or a temporary server started here.
    Raises :class:`RunnerUnavailable` naming what failed."""
    import logging

    url = os.environ.get("PREFECT_API_URL")
    if url:
        if not _api_reachable(url):
            raise RunnerUnavailable(f"the Prefect API at PREFECT_API_URL={url} does not answer")
        return url
    from prefect.server.api.server import SubprocessASGIServer

    timeout = int(float(os.environ.get(START_TIMEOUT_ENV, "180")))
    logging.getLogger(__name__).info("starting a temporary Prefect server (up to %d s; set PREFECT_API_URL to use a "
                                     "running one, or --runner local to skip Prefect)", timeout)
    run_display.note(f"starting a temporary Prefect server (up to {timeout} s)")
    server = SubprocessASGIServer()
    try:
        server.start(timeout=timeout)
    except RuntimeError as exc:
        raise RunnerUnavailable(f"no temporary Prefect server answered within {timeout} s "
                                f"({str(exc).splitlines()[0][:160]})") from None
    return server.api_url


def run_with_prefect(spec: RunSpec, config: Any, out: str | Path, *, refresh: bool = False,
                     progress: bool = True) -> RunResult:
    """The ``prefect`` runner: the run as the ``<domain>-pipeline`` flow (see the module doc)."""
    start = time.monotonic()
    os.environ["PREFECT_API_URL"] = ensure_api()
    run_display.note("the Prefect flow is starting")
    outcomes = run_flow(spec.domain)(str(out), config=config.model_dump(mode="json"), refresh=refresh,
                                     progress=progress)
    layout = spec.layout(out)
    return RunResult(domain=spec.domain, layout=layout, outcomes=[StageOutcome(**o) for o in outcomes],
                     summary=spec.summary(layout), runner="prefect", seconds=time.monotonic() - start)
