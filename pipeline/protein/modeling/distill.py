"""The work behind ``velocast distill protein``: a few-step student of a trained alanine-dipeptide model.

By reflow (below) or by a scoring-rule fine-tune (``--method energy``, the fair energy score of whole
conformations, proper for their joint law; ``crps`` scores each feature alone): see
:mod:`models.distillation`. The scoring-rule students train on the training store's own frames.

Ensemble models are unconditional: the teacher maps noise to conformations. Forecast models are
conditioned on ``z(t)``: the conditions are the training store's frames that have a lagged successor
(the teacher's own lag). The student (the teacher's network, initialised from its EMA weights) is
fine-tuned on the straight couplings (:mod:`models.distillation`) and written as an ordinary protein run
(same metadata, objective ``fm``) that also records ``sampler="euler"`` and ``sampler_steps=K``;
sample it with ``velocast sample protein --model OUT --sampler euler --steps K``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from models.distillation import ReflowConfig
from pipeline.config import StrictModel


class DistillProteinConfig(StrictModel):
    """Options of ``velocast distill protein``."""

    model: str = Field(description="teacher run directory or checkpoint directory")
    data: str | None = Field(None, description="structure store (forecast models; default: the teacher's)")
    # 65,536 pairs (about 40 s of the teacher on one core): a 1-call student trained 3 minutes on 16,384 of them
    # scored Ramachandran JS 0.194, on 65,536 0.185 (teacher's best 0.170; docs/results/sampling.md)
    reflow: ReflowConfig = Field(
        ReflowConfig(student_steps=4, pairs=65536, pair_batch_size=4096, steps=2000, batch_size=512, lr=3e-4,
                     warmup_steps=50, ema_decay=0.995),
        description="the distillation, sized for the residual-MLP protein model: K = student_steps Euler steps "
                    "(network calls per sample)")


class _Unconditional:
    """Batches of no condition (an ensemble model): only the shape of ``x1`` is used."""

    def __init__(self, dim: int, batch_size: int) -> None:
        self.dim, self.batch_size = dim, batch_size

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1):  # type: ignore[no-untyped-def]
        import torch

        from models.training import Batch

        return Batch(x1=torch.zeros(self.batch_size, self.dim))


def distill_protein(config: DistillProteinConfig, *, out: str | Path, progress: bool = True) -> dict:
    """Distil the teacher into ``out`` (written beside, then renamed into place)."""
    import torch

    from models.training import TensorSource
    from pipeline.distillation import check_new_run_dir, distill_run
    from pipeline.protein.modeling.data import lagged_pairs, trajectory_bounds
    from pipeline.protein.modeling.generate import load_protein_model
    from pipeline.protein.store import open_structure_store

    out = check_new_run_dir(out)
    model = load_protein_model(config.model)
    reflow = config.reflow
    if model.task == "ensemble" and reflow.method == "reflow":
        source = _Unconditional(model.dim, reflow.pair_batch_size)  # reflow needs conditions only: none here
    elif model.task == "ensemble":  # a scoring-rule student learns from the training conformations themselves
        store = open_structure_store(config.data or model.metadata.get("data"))
        z = torch.from_numpy(model.featuriser.encode(store.frames()))
        source = TensorSource(z, batch_size=reflow.batch_size, seed=reflow.seed)
    else:
        data = config.data or model.metadata.get("data")
        store = open_structure_store(data)
        z = torch.from_numpy(model.featuriser.encode(store.frames()))
        first, second = lagged_pairs(trajectory_bounds(store), int(model.metadata["lag_frames"]))
        batch = reflow.pair_batch_size if reflow.method == "reflow" else reflow.batch_size
        source = TensorSource(z[second], condition=z[first], batch_size=batch, seed=reflow.seed)
    result = distill_run(out=out, teacher=model.net, teacher_objective=model.objective,
                         teacher_checkpoint=model.checkpoint, teacher_model=config.model, metadata=model.metadata,
                         source=source, config=reflow, progress=progress,
                         files={"distill_config.json": config.model_dump_json(indent=1)})
    couplings = result.couplings
    return {"method": reflow.method, "pairs": len(couplings) if couplings is not None else 0,
            "teacher_nfe": couplings.nfe if couplings is not None else None, "steps": int(result.metrics["step"]),
            "student_steps": reflow.student_steps, "loss": result.metrics.get("loss"), "task": model.task}
