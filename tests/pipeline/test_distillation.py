"""Writing a student run: a finished distillation appears at ``out`` with its side files; a failed one
leaves nothing there (no half-written run, no hidden temp directory); a non-empty ``out`` is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.distillation import ReflowConfig
from models.networks import MLPDenoiser
from models.objectives import make_objective
from models.training import Batch, TrainConfig, train
from pipeline.distillation import check_new_run_dir, distill_run


class Shapes:
    """Unconditional batches: only the shape of ``x1`` is used by the teacher's pair generation."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> Batch:
        if self.fail:
            raise RuntimeError("data went away")
        return Batch(x1=torch.zeros(16, 2))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> tuple[MLPDenoiser, Path]:
    run = tmp_path_factory.mktemp("teacher")
    net = MLPDenoiser(2, hidden=16, depth=1, time_dim=8)
    data = type("Gauss", (), {"batch": lambda self, step, rank=0, world_size=1: Batch(x1=torch.randn(32, 2) + 3)})()
    train(net=net, data=data, config=TrainConfig(steps=4, batch_size=32, checkpoint_every=4, log_every=2), run_dir=run)
    return net, next((run / "checkpoints").iterdir())


def small_config() -> ReflowConfig:
    return ReflowConfig(student_steps=2, teacher_steps=2, pairs=32, pair_batch_size=16, steps=3, batch_size=16)


def test_a_student_run_lands_with_its_side_files(teacher, tmp_path) -> None:
    net, ckpt = teacher
    out = tmp_path / "student"
    result = distill_run(out=out, teacher=net, teacher_objective=make_objective("fm"), teacher_checkpoint=ckpt,
                         teacher_model="teacher", metadata={"objective": "fm"}, source=Shapes(),
                         config=small_config(), files={"distill_config.json": "{}"}, progress=False)
    assert len(result.couplings) == 32
    assert (out / "distill_config.json").read_text() == "{}" and (out / "checkpoints").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["student"]


def test_a_failed_distillation_leaves_nothing(teacher, tmp_path) -> None:
    net, ckpt = teacher
    with pytest.raises(RuntimeError, match="data went away"):
        distill_run(out=tmp_path / "student", teacher=net, teacher_objective=make_objective("fm"),
                    teacher_checkpoint=ckpt, teacher_model="teacher", metadata={}, source=Shapes(fail=True),
                    config=small_config(), files={}, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_run_is_never_overwritten(tmp_path) -> None:
    (tmp_path / "run").mkdir()
    assert check_new_run_dir(tmp_path / "run") == tmp_path / "run"  # empty: fine
    (tmp_path / "run" / "weights").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        check_new_run_dir(tmp_path / "run")
