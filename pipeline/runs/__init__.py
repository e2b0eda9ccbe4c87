"""The stage machinery: a run declared once as data, executed by any runner with one caching scheme.

* :mod:`pipeline.runs.layout` — where a run's artefacts live and how their fingerprints are read;
* :mod:`pipeline.runs.spec` — :class:`Stage` and :class:`RunSpec`, the declaration;
* :mod:`pipeline.runs.record` — ``RUN/run.json`` and the run directory's lock;
* :mod:`pipeline.runs.execute` — one stage, the same way under every runner;
* :mod:`pipeline.runs.local` — the in-process runner;
* :mod:`pipeline.runs.steps` — operations (the forecast cycle, verification): workflows over ``Steps``.

Runners are looked up by name (:func:`get_runner`); ``local`` is built in, and a plugin adds others
(``flows`` adds ``prefect`` through the ``velocast.plugins`` entry point), so ``pipeline`` never imports
an orchestrator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from pipeline.runs.execute import RunResult, StageOutcome, execute_stage, prepare_run
from pipeline.runs.layout import Artefact, Layout, artefact, fingerprint
from pipeline.runs.local import run_local
from pipeline.runs.record import stage_seconds
from pipeline.runs.spec import RunSpec, RunSummary, Stage, StageContext
from pipeline.runs.steps import LocalSteps, Steps


class Runner(Protocol):
    """Executes a run: ``runner(spec, config, out, refresh=..., progress=...) -> RunResult``."""

    def __call__(self, spec: RunSpec, config: BaseModel, out: str | Path, *, refresh: bool = False,
                 progress: bool = True) -> RunResult: ...


class RunnerUnavailable(RuntimeError):
    """The runner cannot run now (e.g. no Prefect API could be reached or started); the message says why."""


class OperationRunner(Protocol):
    """Executes a domain's operation: ``runner(domain, operation, parameters) -> result``."""

    def __call__(self, domain: str, operation: str, parameters: dict[str, Any]) -> Any: ...


_RUNNERS: dict[str, Runner] = {"local": run_local}
_OPERATION_RUNNERS: dict[str, OperationRunner] = {}  # "local": pipeline.domains.run_operation


def register_runner(name: str, runner: Runner, operations: OperationRunner | None = None) -> None:
    """Make ``runner`` (and its way of running operations) available as ``velocast run --runner NAME``."""
    _RUNNERS[name] = runner
    if operations is not None:
        _OPERATION_RUNNERS[name] = operations


def get_runner(name: str) -> Runner:
    """The runner registered as ``name``; KeyError naming the available ones otherwise."""
    if name not in _RUNNERS:
        raise KeyError(f"no runner {name!r}; available: {', '.join(sorted(_RUNNERS))}")
    return _RUNNERS[name]


def get_operation_runner(name: str) -> OperationRunner:
    """How the runner ``name`` runs operations; KeyError naming the available ones otherwise."""
    if name not in _OPERATION_RUNNERS:
        raise KeyError(f"no runner {name!r}; available: {', '.join(sorted(_OPERATION_RUNNERS))}")
    return _OPERATION_RUNNERS[name]


def runner_names() -> list[str]:
    return sorted(_RUNNERS)


__all__ = [
    "Artefact",
    "Layout",
    "LocalSteps",
    "OperationRunner",
    "RunResult",
    "RunSpec",
    "RunSummary",
    "Runner",
    "RunnerUnavailable",
    "Stage",
    "StageContext",
    "StageOutcome",
    "Steps",
    "artefact",
    "execute_stage",
    "fingerprint",
    "get_operation_runner",
    "get_runner",
    "prepare_run",
    "register_runner",
    "run_local",
    "runner_names",
    "stage_seconds",
]
