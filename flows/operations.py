"""Every domain's operations as Prefect flows, built from the plain workflow functions; no domain knowledge here.

An operation (see :mod:`pipeline.runs.steps`) is a function ``op(steps, **parameters)`` that a domain lists in
``Domain.operations``. :func:`operation_flow` makes it the flow named after the operation, whose parameters
are the function's, and hands it :class:`PrefectSteps`: every step a task (named ``STEP-INPUT``), retried
with exponential backoff, cached on the key the operation gives (results as JSON, no pickle; a cached
result that is no longer valid is recomputed), ``map`` fanned out on the flow's task runner (e.g. Dask),
``publish`` as artifacts, a per-step timing table, and a failure named with its step and input.

The flows are this module's attributes under the operation's name with ``_`` for ``-``
(``flows.operations.forecast_cycle``), which deployments use as entrypoints (``flows/operations.py:verify``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from flows.common import BACKOFF_S, StepTimer, artifact_key, digest, progress_artifact
from pipeline.domains import domains, get_domain, resolve


@dataclass
class PrefectSteps:
    """The steps of one operation as Prefect tasks (see the module doc)."""

    operation: str
    timer: StepTimer = field(init=False)

    def __post_init__(self) -> None:
        self.timer = StepTimer(self.operation)

    def _task(self, name: str, fn: Callable[..., Any], *, run_name: str, retries: int,
              cache_key: Sequence[Any] | None, progress: bool) -> Any:
        from prefect import task
        from prefect.tasks import exponential_backoff

        options: dict[str, Any] = {"name": name, "task_run_name": run_name}
        if retries:
            options |= {"retries": retries, "retry_delay_seconds": exponential_backoff(backoff_factor=BACKOFF_S),
                        "retry_jitter_factor": 0.2}
        if cache_key is not None:
            key = digest([name, *cache_key])
            options |= {"cache_key_fn": lambda context, parameters: key, "persist_result": True,
                        "result_serializer": "json"}
        body = fn
        if progress:
            def body(*args: Any, **kwargs: Any) -> Any:
                report = progress_artifact(f"progress-{run_name}", f"{name} progress")
                result = fn(*args, on_progress=report, **kwargs)
                report(1.0)
                return result

            body.__name__ = fn.__name__
        return task(body, **options)

    def run(self, name: str, fn: Callable[..., Any], /, *args: Any, label: str = "", retries: int = 0,
            cache_key: Sequence[Any] | None = None, valid: Callable[[Any], bool] | None = None,
            progress: bool = False, **kwargs: Any) -> Any:
        step = self._task(name, fn, run_name=f"{name}-{label}" if label else name, retries=retries,
                          cache_key=cache_key, progress=progress)
        with self.timer.step(name, label=label):
            result = step(*args, **kwargs)
            if valid is not None and not valid(result):  # its outputs were deleted or replaced since
                result = step.with_options(refresh_cache=True)(*args, **kwargs)
        return result

    def map(self, name: str, fn: Callable[..., Any], items: Sequence[Any], /, *, retries: int = 0,
            **kwargs: Any) -> list[Any]:
        futures = [(item, self._task(name, fn, run_name=f"{name}-{item}", retries=retries, cache_key=None,
                                     progress=False).submit(item, **kwargs)) for item in items]
        results = []
        for item, future in futures:
            with self.timer.step(name, label=str(item)):
                results.append(future.result())
        return results

    def publish(self, key: str, *, markdown: str | None = None, table: list[dict[str, Any]] | None = None,
                description: str = "") -> None:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact

        if markdown is not None:
            create_markdown_artifact(markdown, key=artifact_key(key), description=description)
        if table is not None:
            create_table_artifact(table, key=artifact_key(key), description=description)


def _operations() -> dict[str, tuple[str, str]]:
    """Python name → (domain, operation) of every registered domain's operations."""
    found: dict[str, tuple[str, str]] = {}
    for domain in domains():
        for name in domain.operations:
            attribute = name.replace("-", "_")
            if attribute in found:
                raise ValueError(f"operation {name!r} of {domain.name} clashes with {found[attribute]}")
            found[attribute] = (domain.name, name)
    return found


@lru_cache(maxsize=None)
def operation_flow(domain: str, name: str) -> Any:
    """The Prefect flow of ``domain``'s operation ``name`` (its parameters are the workflow function's)."""
    from prefect import flow

    function = resolve(get_domain(domain).operations[name])
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function)
    parameters = [p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)
                  for p in list(signature.parameters.values())[1:]]  # all but `steps`, positional too

    flow_signature = signature.replace(parameters=parameters, return_annotation=hints.get("return"))

    def body(*args: Any, **kwargs: Any) -> Any:
        steps = PrefectSteps(name)
        try:
            return function(steps, **flow_signature.bind(*args, **kwargs).arguments)
        finally:
            steps.timer.publish()

    body.__signature__ = flow_signature  # type: ignore[attr-defined]
    body.__name__ = function.__name__
    body.__doc__ = function.__doc__
    body.__annotations__ = {p.name: p.annotation for p in parameters}
    return flow(body, name=name, log_prints=True)


def __getattr__(attribute: str) -> Any:
    operations = _operations()
    if attribute in operations:
        return operation_flow(*operations[attribute])
    raise AttributeError(f"module 'flows.operations' has no attribute {attribute!r}")


def run_operation_with_prefect(domain: str, operation: str, parameters: dict[str, Any]) -> Any:
    """The ``prefect`` runner of an operation: its flow against ``PREFECT_API_URL`` or a temporary server."""
    import os

    from flows.runs import ensure_api

    os.environ["PREFECT_API_URL"] = ensure_api()
    return operation_flow(domain, operation)(**parameters)
