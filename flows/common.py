"""Shared orchestration helpers: retry policy, cache keys, step timing and failure naming, artifacts.

Flows stay thin: every task calls one ``pipeline`` function and returns paths, snapshot ids or small
JSON-able dicts (never tensors or datasets), so results can be cached (JSON serializer, no pickle) and
shipped to Dask workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.tasks import exponential_backoff

from pipeline.errors import UserError
from pipeline.runs import RunSummary

#: Retries of I/O tasks (``$VELOCAST_FLOW_RETRIES``, default 3) and the first backoff in seconds
#: (``$VELOCAST_RETRY_BACKOFF``, default 2: waits 2, 4, 8 s). Read when the flows module is imported.
IO_RETRIES = int(os.environ.get("VELOCAST_FLOW_RETRIES", "3"))
BACKOFF_S = float(os.environ.get("VELOCAST_RETRY_BACKOFF", "2"))


def io_retry_options() -> dict[str, Any]:
    """``retries`` / ``retry_delay_seconds`` for tasks that read or write stores."""
    return {"retries": IO_RETRIES, "retry_delay_seconds": exponential_backoff(backoff_factor=BACKOFF_S),
            "retry_jitter_factor": 0.2}


def cached_options(key_fn: Callable[[dict[str, Any]], list[Any]]) -> dict[str, Any]:
    """Task options for caching on ``key_fn(parameters)`` (a list of the hashes that matter), with results
    persisted as JSON (no pickle)."""

    def cache_key(context: Any, parameters: dict[str, Any]) -> str:
        name = context.task.name if context is not None and getattr(context, "task", None) else "task"
        return digest([name, *key_fn(parameters)])

    return {"cache_key_fn": cache_key, "persist_result": True, "result_serializer": "json"}


def run_cached(task: Any, *args: Any, valid: Callable[[Any], bool], refresh: bool = False) -> Any:
    """Call a cached ``task``; when the (possibly cached) result fails ``valid`` — its outputs were deleted
    or replaced since — run it again with the cache refreshed. ``refresh`` skips the cache outright."""
    result = (task.with_options(refresh_cache=True) if refresh else task)(*args)
    if not refresh and not valid(result):
        result = task.with_options(refresh_cache=True)(*args)
    return result


def exists(*paths: Any) -> bool:
    """All paths exist."""
    return all(Path(str(p)).exists() for p in paths)


def digest(parts: Any) -> str:
    """Short SHA-256 of a JSON-able value."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def store_fingerprint(path: str | Path) -> str:
    """The data snapshot id of a Zarr analysis store (path, times, attributes; see
    :func:`pipeline.weather.store.data_fingerprint`), or ``missing``."""
    if not Path(path).exists():
        return "missing"
    from pipeline.weather.store import data_fingerprint
    from pipeline.weather.store import open_training_store

    return data_fingerprint(open_training_store(path), path)


def checkpoint_hash(run: str | Path) -> str:
    """SHA-256 of the newest checkpoint's weights of a run (or ``none``)."""
    from models.training.checkpoint import latest_checkpoint
    from pipeline.provenance import file_sha256

    path = Path(run)
    ckpt = path if (path / "weights.safetensors").exists() else latest_checkpoint(path)
    return "none" if ckpt is None else f"sha256:{file_sha256(ckpt / 'weights.safetensors')}"


class StepFailed(RuntimeError):
    """A flow step failed; the message names the step and its input."""


@dataclass
class StepTimer:
    """Per-step wall times of one flow run, published as a table artifact."""

    flow: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, **inputs: Any) -> Iterator[None]:
        """Time the block; a failure is re-raised naming the step and its inputs."""
        label = ", ".join(f"{k}={v}" for k, v in inputs.items())
        start = time.monotonic()
        try:
            yield
        except Exception as exc:
            self.rows.append({"step": name, "input": label, "seconds": round(time.monotonic() - start, 2),
                              "status": "failed"})
            self.publish()
            where = f"step '{name}'" + (f" ({label})" if label else "")
            if isinstance(exc, UserError):
                raise UserError(f"{self.flow}: {where} failed: {exc}") from exc
            raise StepFailed(f"{self.flow}: {where} failed: {type(exc).__name__}: {exc}") from exc
        self.rows.append({"step": name, "input": label, "seconds": round(time.monotonic() - start, 2),
                          "status": "ok"})

    def publish(self) -> None:
        """The timing table as a Prefect table artifact (key ``<flow>-timings``)."""
        from prefect.artifacts import create_table_artifact

        total = round(sum(r["seconds"] for r in self.rows), 2)
        create_table_artifact(self.rows + [{"step": "total", "input": "", "seconds": total, "status": ""}],
                              key=artifact_key(f"{self.flow}-timings"),
                              description=f"Per-step wall times of this {self.flow} run (seconds)")


def artifact_key(text: str) -> str:
    """A valid artifact key: lowercase letters, digits and dashes."""
    out = "".join(c if c.isalnum() else "-" for c in text.lower())
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def progress_artifact(key: str, description: str) -> Callable[[float], None]:
    """A Prefect progress artifact and a ``report(fraction)`` that updates it (at most once a second)."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    artifact = create_progress_artifact(0.0, key=artifact_key(key), description=description)
    last = {"t": 0.0, "value": -1.0}

    def report(fraction: float) -> None:
        now = time.monotonic()
        value = round(100.0 * min(1.0, max(0.0, fraction)), 1)
        if value > last["value"] and (now - last["t"] >= 1.0 or value >= 100.0):
            update_progress_artifact(artifact, progress=value)
            last.update(t=now, value=value)

    return report


def publish_summary(domain: str, summary: RunSummary, timer: StepTimer) -> None:
    """A finished run's artifacts: the timing table, the report (Markdown), the headline table and the first
    plot (keys ``<domain>-pipeline-timings``, ``<domain>-report``, ``<domain>-headline``, ``<domain>-plot``)."""
    from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact

    timer.publish()
    if summary.report is not None and summary.report.exists():
        create_markdown_artifact(summary.report.read_text(), key=artifact_key(f"{domain}-report"),
                                 description=str(summary.report))
    if summary.headline:
        rows = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()} for row in summary.headline]
        create_table_artifact(rows, key=artifact_key(f"{domain}-headline"), description=summary.title)
    plots = [p for p in summary.plots if p.exists()]
    if plots:
        create_image_artifact(plots[0].resolve().as_uri(), key=artifact_key(f"{domain}-plot"),
                              description=str(plots[0]))
