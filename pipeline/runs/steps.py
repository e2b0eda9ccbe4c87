"""How an operation's steps run: in this process, or as an orchestrator's tasks.

An *operation* (the forecast cycle, verification, a scheduled training) is a plain function whose first
argument is a :class:`Steps` and which calls every step through it::

    def verify(steps: Steps, *, analysis: str, store: str) -> dict:
        pending = steps.run("pending-verification", pending_verification, analysis, store, retries=IO_RETRIES)
        rows = steps.map("score-cycle", score_cycle, pending, analysis=analysis, store=store)
        ...

The operation decides *what* runs; a :class:`Steps` decides *how*: :class:`LocalSteps` calls each step in
this process (retrying, timing, naming a failure by its step), and ``flows`` turns each step into a Prefect
task (retries, caching, a fan-out on the flow's task runner, artifacts) without knowing the operation.
Steps return small JSON-able values (paths, ids, rows), never arrays.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.errors import UserError

log = logging.getLogger(__name__)

#: Retries of steps that read or write stores (``$VELOCAST_FLOW_RETRIES``, default 3) and the first backoff in
#: seconds (``$VELOCAST_RETRY_BACKOFF``, default 2: waits 2, 4, 8 s); read when this module is imported.
IO_RETRIES = int(os.environ.get("VELOCAST_FLOW_RETRIES", "3"))
BACKOFF_S = float(os.environ.get("VELOCAST_RETRY_BACKOFF", "2"))

Progress = Callable[[float], None]


class StepFailed(RuntimeError):
    """A step failed for another reason than bad input; the message names the operation, step and input."""


class Steps(Protocol):
    """Runs an operation's steps (see the module doc)."""

    def run(self, name: str, fn: Callable[..., Any], /, *args: Any, label: str = "", retries: int = 0,
            cache_key: Sequence[Any] | None = None, valid: Callable[[Any], bool] | None = None,
            progress: bool = False, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` as the step ``name`` (``label`` names its input). ``retries``: failed tries
        repeated with exponential backoff. ``cache_key``: the values the result depends on (an orchestrator
        may reuse a result of the same key while ``valid(result)``). ``progress``: ``fn`` takes an
        ``on_progress(fraction)`` keyword."""

    def map(self, name: str, fn: Callable[..., Any], items: Sequence[Any], /, *, retries: int = 0,
            **kwargs: Any) -> list[Any]:
        """``[fn(item, **kwargs) for item in items]``, each a step ``name-ITEM`` (fanned out where the
        orchestrator can)."""

    def publish(self, key: str, *, markdown: str | None = None, table: list[dict[str, Any]] | None = None,
                description: str = "") -> None:
        """Show a result (an orchestrator keeps it as an artifact)."""


@dataclass
class LocalSteps:
    """Steps in this process: each call inline, failures retried with backoff, each step timed, a failure
    named by its operation, step and input."""

    operation: str
    timings: list[dict[str, Any]] = field(default_factory=list)
    published: dict[str, Any] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[..., Any], /, *args: Any, label: str = "", retries: int = 0,
            cache_key: Sequence[Any] | None = None, valid: Callable[[Any], bool] | None = None,
            progress: bool = False, **kwargs: Any) -> Any:
        if progress:
            kwargs["on_progress"] = lambda fraction: None
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                result = fn(*args, **kwargs)
                break
            except Exception as exc:
                if attempt >= retries:
                    self.timings.append({"step": name, "input": label, "seconds": round(time.monotonic() - start, 2),
                                         "status": "failed"})
                    raise step_error(self.operation, name, label, exc) from exc
                attempt += 1
                wait = BACKOFF_S * 2 ** (attempt - 1)
                log.warning("%s: step '%s' failed (%s); retrying in %.1f s (%d/%d)", self.operation, name, exc, wait,
                            attempt, retries)
                time.sleep(wait)
        self.timings.append({"step": name, "input": label, "seconds": round(time.monotonic() - start, 2),
                             "status": "ok"})
        return result

    def map(self, name: str, fn: Callable[..., Any], items: Sequence[Any], /, *, retries: int = 0,
            **kwargs: Any) -> list[Any]:
        return [self.run(f"{name}-{item}", fn, item, label=str(item), retries=retries, **kwargs) for item in items]

    def publish(self, key: str, *, markdown: str | None = None, table: list[dict[str, Any]] | None = None,
                description: str = "") -> None:
        self.published[key] = markdown if markdown is not None else table
        log.debug("%s: %s", key, description)


def step_error(operation: str, step: str, label: str, exc: BaseException) -> Exception:
    """The error a failed step becomes: a UserError stays one line naming the step, anything else a StepFailed."""
    where = f"step '{step}'" + (f" ({label})" if label else "")
    if isinstance(exc, UserError):
        return UserError(f"{operation}: {where} failed: {exc}")
    return StepFailed(f"{operation}: {where} failed: {type(exc).__name__}: {exc}")
