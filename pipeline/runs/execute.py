"""Executing one stage of a run, the same way under every runner.

:func:`execute_stage` computes the stage's cache key, returns the recorded result when the stage is
cached (see :mod:`pipeline.runs.record`), and otherwise removes outputs made under another key, runs
the stage (retrying transient I/O errors ``stage.retries`` times) and records it. A
:class:`~pipeline.errors.UserError` raised by a stage is re-raised naming the run and the stage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pipeline.errors import UserError
from pipeline.runs.layout import Layout
from pipeline.runs.record import CONFIG_FILE, RunRecord
from pipeline.runs.spec import RunSpec, RunSummary, Stage, StageContext

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = 2.0


@dataclass(frozen=True)
class StageOutcome:
    """What running (or reusing) one stage gave: its key, result, output fingerprints and wall time."""

    name: str
    key: str
    cached: bool
    seconds: float
    result: Any
    outputs: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunResult:
    """A finished run: its domain and layout, every stage's outcome, the runner used, the summary, the wall time."""

    domain: str
    layout: Layout
    outcomes: list[StageOutcome]
    summary: RunSummary
    runner: str
    seconds: float


def prepare_run(spec: RunSpec, config: BaseModel, out: str | Path) -> Layout:
    """Create the run directory and write the config the run really uses (``run_config.json``)."""
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise UserError("--out must be a directory (it is a file)", path=root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / CONFIG_FILE).write_text(config.model_dump_json(indent=1) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write the run directory: {exc.strerror or exc}", path=root) from None
    return spec.layout(root)


def current_outputs(stage: Stage, layout: Layout) -> dict[str, str]:
    """The fingerprints of ``stage``'s outputs now."""
    return {name: layout.fingerprint(name) for name in stage.outputs}


def cached_outcome(spec: RunSpec, stage: Stage, config: BaseModel, layout: Layout) -> StageOutcome | None:
    """The recorded outcome of ``stage`` if it is still valid (same key, unchanged outputs), else None."""
    key = spec.stage_key(stage, config, layout)
    entry = RunRecord(layout.root).entry(stage.name)
    if entry is None or entry.get("key") != key or entry.get("outputs") != current_outputs(stage, layout):
        return None
    return StageOutcome(name=stage.name, key=key, cached=True, seconds=0.0, result=entry.get("result"),
                        outputs=entry["outputs"])


def execute_stage(spec: RunSpec, stage: Stage, config: BaseModel, layout: Layout, *, refresh: bool = False,
                  context: StageContext | None = None) -> StageOutcome:
    """Run ``stage`` of ``spec`` in ``layout`` unless it is cached (``refresh``: run it regardless)."""
    if not refresh:
        hit = cached_outcome(spec, stage, config, layout)
        if hit is not None:
            return hit
    key = spec.stage_key(stage, config, layout)
    record = RunRecord(layout.root)
    entry = record.entry(stage.name)
    if refresh or (entry is not None and entry.get("key") != key):
        # made under another key (config or inputs changed) or asked to recompute: start clean
        for name in stage.outputs:
            layout.remove(name)
        record.forget(stage.name)
    start = time.monotonic()
    result = _run_with_retries(spec, stage, config, layout, context or StageContext())
    seconds = time.monotonic() - start
    outputs = current_outputs(stage, layout)
    RunRecord(layout.root).finish(stage.name, key=key, outputs=outputs, result=result, seconds=seconds)
    return StageOutcome(name=stage.name, key=key, cached=False, seconds=seconds, result=result, outputs=outputs)


def _run_with_retries(spec: RunSpec, stage: Stage, config: BaseModel, layout: Layout,
                      context: StageContext) -> Any:
    attempt = 0
    while True:
        try:
            result = stage.run(config, layout, context)
            return dict(result) if result is not None else None
        except UserError as exc:
            raise UserError(f"{spec.domain} run: stage '{stage.name}' failed: {exc}") from exc
        except OSError as exc:
            if attempt >= stage.retries:
                raise
            attempt += 1
            wait = RETRY_BACKOFF_S * 2 ** (attempt - 1)
            log.warning("%s: %s; retrying in %.0f s (%d/%d)", stage.name, exc, wait, attempt, stage.retries)
            time.sleep(wait)
