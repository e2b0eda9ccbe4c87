"""The in-process runner: a run's stages one after another in this process, with the same caching as the
Prefect flow (``RUN/run.json``; see :mod:`pipeline.runs.record`). Used by ``velocast run --runner
local``, and by ``--runner auto`` when no Prefect API can be had."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

from pipeline.runs import display
from pipeline.runs.execute import RunResult, execute_stage, prepare_run
from pipeline.runs.record import run_lock
from pipeline.runs.spec import RunSpec, StageContext


def run_local(spec: RunSpec, config: BaseModel, out: str | Path, *, refresh: bool = False,
              progress: bool = True) -> RunResult:
    """Run every stage of ``spec`` into ``out`` (finished stages are reused); returns the outcomes."""
    start = time.monotonic()
    layout = prepare_run(spec, config, out)
    outcomes = []
    with run_lock(layout.root):
        total = len(spec.stages)
        for number, stage in enumerate(spec.stages, 1):
            display.stage_started(number, total, stage)
            outcome = execute_stage(spec, stage, config, layout, refresh=refresh,
                                    context=StageContext(progress=progress))
            display.stage_finished(number, total, stage.name, cached=outcome.cached, seconds=outcome.seconds)
            outcomes.append(outcome)
    return RunResult(domain=spec.domain, layout=layout, outcomes=outcomes, summary=spec.summary(layout), runner="local",
                     seconds=time.monotonic() - start)
