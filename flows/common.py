"""What the flows share: the retry settings, cache-key digests, the per-step timing table, artifacts.

Tasks exchange paths, snapshot ids and small JSON-able dicts (never tensors or datasets), so results are
cached with the JSON serializer (no pickle) and can be shipped to Dask workers.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipeline.runs import RunSummary
from pipeline.runs.steps import BACKOFF_S, IO_RETRIES, step_error

__all__ = ["BACKOFF_S", "IO_RETRIES", "StepTimer", "artifact_key", "digest", "progress_artifact", "publish_summary"]


def digest(parts: Any) -> str:
    """Short SHA-256 of a JSON-able value."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass
class StepTimer:
    """Per-step wall times of one flow run, published as a table artifact."""

    flow: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, *, label: str = "") -> Iterator[None]:
        """Time the block; a failure is re-raised naming the flow, the step and its input (``label``)."""
        start = time.monotonic()
        try:
            yield
        except Exception as exc:
            self.rows.append({"step": name, "input": label, "seconds": round(time.monotonic() - start, 2),
                              "status": "failed"})
            self.publish()
            raise step_error(self.flow, name, label, exc) from exc
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
