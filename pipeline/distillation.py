"""Write a student run atomically (reflow or crps): the domain-independent half of ``velocast distill``.

Both domains pick a teacher network and a source of conditions; this module runs
:func:`models.distillation.reflow_distill` into a hidden directory beside ``out`` with progress bars,
writes the given side files (configs) there and renames it into place, so a failed or interrupted
distillation leaves nothing at ``out``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from models.distillation import DistillResult, ReflowConfig, reflow_distill
from models.objectives import Objective
from models.training import BatchSource
from pipeline.console import make_progress
from pipeline.files import clean_stale, temp_beside
from pipeline.provenance import file_sha256


def check_new_run_dir(out: str | Path) -> Path:
    """``out`` as a Path; ValueError when it exists and is not empty (a student never overwrites a run)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} already exists and is not empty; choose a new --out")
    return out


def distill_run(
    *,
    out: Path,
    teacher: nn.Module,
    teacher_objective: Objective,
    teacher_checkpoint: str | Path,
    teacher_model: str,
    metadata: dict[str, Any],
    source: BatchSource,
    config: ReflowConfig,
    files: dict[str, str],
    noise_scale: Tensor | float = 1.0,
    progress: bool = True,
) -> DistillResult:
    """Distil ``teacher`` into the new run ``out`` by ``config.method``; ``files`` (name → text) are written beside
    it.

    The teacher starts from ``noise_scale``·z (see :mod:`models.distillation`). The student's checkpoint
    metadata is the teacher's ``metadata`` plus the teacher checkpoint's SHA-256
    and ``teacher_model``.
    """
    meta = dict(metadata)
    meta["teacher_checkpoint"] = f"sha256:{file_sha256(Path(teacher_checkpoint) / 'weights.safetensors')}"
    meta["teacher_model"] = str(teacher_model)
    clean_stale(out)
    tmp = temp_beside(out, directory=True)
    try:
        with make_progress(enabled=progress) as bar:
            tasks = {"steps": bar.add_task(f"distil ({config.method})", total=config.steps)}
            if config.method == "reflow":
                tasks["pairs"] = bar.add_task("teacher pairs", total=config.pairs)
            result = reflow_distill(teacher=teacher, teacher_objective=teacher_objective, source=source,
                                    config=config, run_dir=tmp, extra=meta,
                                    teacher_objective_name=str(metadata.get("objective")),
                                    noise_scale=noise_scale,
                                    progress=lambda stage, done, total: bar.update(tasks[stage], completed=done))
        for name, text in files.items():
            (tmp / name).write_text(text)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return result
