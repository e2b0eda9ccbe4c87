"""The toy verbs (`velocast train toy`, `sample toy`) end to end, and their user errors (one line, exit 2)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env_cmd = [sys.executable, "-m", "pipeline", *args]
    return subprocess.run(
        env_cmd,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"},
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("toy")
    run = tmp / "run"
    result = run_cli("train", "toy", "--out", str(run), "--steps", "40", "--objective", "edm", "--no-progress", "--set",
            "train.checkpoint_every=20", "--set", "train.log_every=20", cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert "step 40/40" in result.stdout
    return run


def test_train_writes_checkpoints_config_and_metrics(trained_run: Path) -> None:
    """Training leaves safetensors + JSON checkpoints, the resolved config and JSONL metrics."""
    ckpts = sorted(p.name for p in (trained_run / "checkpoints").iterdir())
    assert ckpts == ["step_00000020", "step_00000040"]
    assert json.loads((trained_run / "train_config.json").read_text())["train"]["objective"] == "edm"
    assert len((trained_run / "metrics.jsonl").read_text().splitlines()) == 2


def test_train_resumes_an_existing_run(trained_run: Path, tmp_path: Path) -> None:
    """Running again with more steps continues from the last checkpoint."""
    result = run_cli("train", "toy", "--out", str(trained_run), "--steps", "50", "--objective", "edm", "--no-progress",
            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "step 50/50" in result.stdout
    assert len((trained_run / "metrics.jsonl").read_text().splitlines()) == 3  # 20, 40 then 50


def test_sample_writes_npz_and_png(trained_run: Path, tmp_path: Path) -> None:
    """Sampling writes the samples (.npz) or a scatter plot (.png) and reports the NFE."""
    result = run_cli("sample", "toy", "--model", str(trained_run), "--n", "64", "--sampler", "dpmpp_2s", "--steps", "5",
            "--out", str(tmp_path / "s.npz"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "NFE 10" in result.stdout
    data = np.load(tmp_path / "s.npz")
    assert data["samples"].shape == (64, 2) and np.isfinite(data["samples"]).all()
    result = run_cli("sample", "toy", "--model", str(trained_run), "--n", "64", "--steps", "3", "--out",
            str(tmp_path / "s.png"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _assert_user_error(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (fast) run of the CLI main: exit status 2 and one stderr line containing ``needle``."""
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], err


def test_missing_run_dir_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sample", "toy", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x.npz")]
    _assert_user_error(args, "not found", capsys)


def test_unknown_sampler_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sample", "toy", "--model", str(tmp_path), "--sampler", "rk45", "--out", str(tmp_path / "x.npz")]
    _assert_user_error(args, "unknown sampler", capsys)


def test_pickle_checkpoint_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pickle file given as the model is refused (never unpickled) with one line and exit 2."""
    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    _assert_user_error(
        ["sample", "toy", "--model", str(bad), "--out", str(tmp_path / "x.npz")], "pickle", capsys
    )


def test_bad_objective_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "toy", "--out", str(tmp_path / "r"), "--objective", "eps-linear", "--steps", "1"]
    _assert_user_error(args, "objective", capsys)


def test_subprocess_user_error_exits_2(tmp_path: Path) -> None:
    """The real command line (``python -m pipeline``) exits 2 with one line for a user error."""
    result = run_cli("sample", "toy", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x.npz"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "not found" in result.stderr
