"""The ``flows`` plugin of the ``velocast`` command (entry point ``velocast.plugins: prefect``): the ``prefect``
runner of ``velocast run`` (runs and operations) and ``velocast deploy``.

Importing it is cheap: Prefect is imported only when a runner or command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.runs import RunnerUnavailable, RunResult, RunSpec, register_runner


def prefect_runner(spec: RunSpec, config: Any, out: str | Path, *, refresh: bool = False,
                   progress: bool = True) -> RunResult:
    """:func:`flows.runs.run_with_prefect` (imported on first use)."""
    try:
        from flows.runs import run_with_prefect
    except ImportError as exc:
        raise RunnerUnavailable(f"Prefect is not installed ({exc.name}; pip install "
                                "'velocast[orchestration]')") from None

    return run_with_prefect(spec, config, out, refresh=refresh, progress=progress)


def prefect_operation_runner(domain: str, operation: str, parameters: dict[str, Any]) -> Any:
    """:func:`flows.operations.run_operation_with_prefect` (imported on first use)."""
    try:
        from flows.operations import run_operation_with_prefect
    except ImportError as exc:
        raise RunnerUnavailable(f"Prefect is not installed ({exc.name}; pip install "
                                "'velocast[orchestration]')") from None
    return run_operation_with_prefect(domain, operation, parameters)


register_runner("prefect", prefect_runner, operations=prefect_operation_runner)

import flows.cli  # noqa: E402,F401  (registers the operations commands)
