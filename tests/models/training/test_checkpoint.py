"""Checkpoint integrity: weights changed since they were saved, non-finite weights and incomplete checkpoints are
refused naming the file; what an interrupted write left is removed; a resumed run logs no step twice."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from models.training import CheckpointError, load_checkpoint, train
from models.training.checkpoint import WEIGHTS, list_checkpoints, save_checkpoint
from tests.models.training.test_loop import config, small_net, source

pytestmark = pytest.mark.usefixtures("single_thread")


def _save(run: Path, step: int, value: float) -> Path:
    weights = {"w": torch.full((3,), value)}
    return save_checkpoint(run, step=step, model=weights, ema={"w": torch.full((3,), value)}, optimizer=None,
                           rng={}, config={})


def test_weights_changed_since_saving_are_refused(tmp_path: Path) -> None:
    ckpt = _save(tmp_path, 1, 1.0)
    blob = bytearray((ckpt / WEIGHTS).read_bytes())
    blob[-1] ^= 0x40  # one bit of the last weight
    (ckpt / WEIGHTS).write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="SHA-256 differs from the one state.json recorded"):
        load_checkpoint(tmp_path)


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    _save(tmp_path, 1, float("nan"))
    with pytest.raises(CheckpointError, match=r"2 weight tensors hold NaN or inf.*diverged"):
        load_checkpoint(tmp_path)


def test_a_checkpoint_without_its_state_file_is_named_as_incomplete(tmp_path: Path) -> None:
    ckpt = _save(tmp_path, 1, 1.0)
    (ckpt / "state.json").unlink()
    with pytest.raises(CheckpointError, match=r"step_00000001: incomplete checkpoint \(no state.json\)"):
        load_checkpoint(tmp_path)


def test_an_interrupted_write_is_removed_by_the_next_save(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # beyond pid_max on Linux: no such process
    abandoned = tmp_path / "checkpoints" / f".step_00000002.tmp-{dead}"
    abandoned.mkdir(parents=True)
    (abandoned / WEIGHTS).write_bytes(b"half")
    live = tmp_path / "checkpoints" / f".step_00000003.tmp-{os.getpid()}"
    live.mkdir()
    _save(tmp_path, 1, 1.0)
    assert not abandoned.exists() and live.exists()


def test_a_run_killed_after_its_last_checkpoint_resumes_without_logging_a_step_twice(tmp_path: Path) -> None:
    """A kill after step 20 (checkpoint at 15, rows logged at 10 and 20): resuming trains 16–30 again and
    metrics.jsonl holds each logged step once, as an uninterrupted run's does."""
    full = tmp_path / "full"
    train(net=small_net(), data=source(), config=config(), run_dir=full)
    killed = tmp_path / "killed"
    train(net=small_net(), data=source(), config=config(steps=20), run_dir=killed)
    shutil.rmtree(list_checkpoints(killed)[-1])  # the kill came before the step-20 checkpoint
    with open(killed / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 20, "loss": 1.0')  # and cut the last row
    train(net=small_net(), data=source(), config=config(), run_dir=killed)
    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(line)["step"] for line in (full / "metrics.jsonl").read_text().splitlines()]
