"""``velocast distill protein``: the student is an ordinary protein run that samples through the normal
path at the Euler steps recorded in its checkpoint."""

from __future__ import annotations

import pytest

from models.training import load_checkpoint
from pipeline.cli import main
from pipeline.protein.modeling.generate import load_protein_model, sample_conformations
from pipeline.protein.modeling.train import train_protein
from tests.pipeline.protein.modeling.test_protein_models import md_store, tiny  # noqa: F401  (fixture)


def test_distill_protein_cli_writes_a_sampleable_student(md_store, tmp_path, capsys) -> None:  # noqa: F811
    teacher = tmp_path / "teacher"
    train_protein(tiny("ensemble", md_store), out=teacher, progress=False)
    student = tmp_path / "student"
    with pytest.raises(SystemExit) as done:
        main(["distill", "protein", "--model", str(teacher), "--out", str(student), "--steps", "2", "--pairs", "64",
              "--train-steps", "3", "--teacher-steps", "2", "--set", "reflow.batch_size=16", "--no-progress"])
    assert done.value.code in (0, None)
    assert "--sampler euler --steps 2" in " ".join(capsys.readouterr().out.split())
    extra = load_checkpoint(student).extra
    assert extra["domain"] == "protein" and extra["sampler_steps"] == 2 and extra["distillation"]["teacher_nfe"] == 4
    model = load_protein_model(student)
    generated = sample_conformations(model, n=10, sampler=extra["sampler"], steps=extra["sampler_steps"])
    assert generated.coordinates.shape[0] == 10 and generated.nfe == 2
