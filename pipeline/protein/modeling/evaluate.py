"""``velocast evaluate protein``: score generated structures against reference MD, write a report directory.

Files in ``--out``: ``metrics.json`` (its keys: docs/concepts/molecules.md), ``report.md`` and the plots
of :mod:`pipeline.protein.report`. The directory is written beside and renamed into place.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from pipeline.config import StrictModel
from pipeline.evaluation.html import write_html
from pipeline.protein.metrics import evaluate_structures
from pipeline.protein.report import render_markdown, write_plots
from pipeline.protein.store import _jsonable, _replace, _tmp_beside, open_structure_store
from pipeline.provenance import provenance_record


class EvaluateConfig(StrictModel):
    """Options of ``velocast evaluate protein``."""

    samples: str = Field(description="structure store of generated samples or forecast trajectories")
    reference: str = Field(description="structure store of the reference MD (an independent run)")
    training: str | None = Field(None, description="structure store of the training MD (rama_js_training, its "
                                                   "basins and the MD cost)")


def evaluate_protein(config: EvaluateConfig, *, out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Evaluate the stores and write the report directory ``out`` (atomically); returns the metrics."""
    samples, reference, training = config.samples, config.reference, config.training

    stores = {"samples": open_structure_store(samples), "reference": open_structure_store(reference)}
    if training is not None:
        stores["training"] = open_structure_store(training)
    metrics, arrays = evaluate_structures(
        samples=stores["samples"], reference=stores["reference"], training=stores.get("training")
    )
    metrics["provenance"] = provenance_record(
        samples=str(samples),
        reference=str(reference),
        training=None if training is None else str(training),
        samples_provenance=stores["samples"].attrs.get("provenance"),
    )
    metrics = _jsonable(metrics)
    out = Path(out)
    tmp = _tmp_beside(out)
    try:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        plots = write_plots(tmp, arrays=arrays, samples=stores["samples"])
        (tmp / "report.md").write_text(render_markdown(metrics, plots))
        write_html(tmp / "report.md")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return metrics
