"""Weather training end to end on a tiny store: checkpoints with metadata, validation CRPS, resume,
and a loaded forecaster that rolls out."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import torch

from pipeline.weather.modeling.model import load_forecaster
from pipeline.weather.modeling.rollout import rollout
from pipeline.weather.modeling.train import train_weather
from tests.pipeline.weather.modeling.conftest import store_path, tiny_config  # noqa: F401  (fixture)

config = tiny_config  # the name other test modules import


def test_train_validate_checkpoint_and_forecast(fm_run) -> None:
    lines = [json.loads(line) for line in (fm_run / "metrics.jsonl").read_text().splitlines()]
    assert any("val/crps" in line and np.isfinite(line["val/crps"]) for line in lines)
    forecaster, ckpt = load_forecaster(fm_run)
    assert ckpt.name == "step_00000004"
    assert [c.name for c in forecaster.channels] == ["temperature_500", "temperature_850", "surface_pressure"]
    history = np.zeros((1, 2, 3, 8, 16), dtype=np.float32) + forecaster.normalisation.mean.reshape(1, 1, 3, 1, 1)
    out = rollout(forecaster, history=history, init_times=pd.DatetimeIndex(["2000-01-03"]), n_steps=2, members=2,
                  sampler="euler", sampler_steps=2)
    assert out.states.shape == (1, 2, 2, 3, 8, 16) and np.isfinite(out.states).all()


def test_resume_continues_the_same_run(store_path, fm_run, tmp_path) -> None:
    """A run interrupted after its step-2 checkpoint and resumed ends bitwise equal to the uninterrupted
    run (CPU); the seed fixes the initial weights too."""
    shutil.copytree(fm_run, tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step_00000004")  # as if killed after step 2's checkpoint
    resumed = train_weather(tiny_config(store_path, 4), out=tmp_path / "b", progress=False)
    straight, _ = load_forecaster(fm_run)
    again, _ = load_forecaster(tmp_path / "b")
    for name, p in straight.net.state_dict().items():
        assert torch.equal(p, again.net.state_dict()[name]), name
    assert resumed.step == 4


def test_two_runs_of_one_config_are_identical(store_path, fm_run, tmp_path) -> None:
    """Same config, same result: a second clean run has bitwise the same weights and the same logged losses."""
    train_weather(tiny_config(store_path, 4), out=tmp_path / "again", progress=False)
    first, _ = load_forecaster(fm_run)
    second, _ = load_forecaster(tmp_path / "again")
    for name, p in first.net.state_dict().items():
        assert torch.equal(p, second.net.state_dict()[name]), name

    def losses(run):
        return [json.loads(line).get("loss") for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert losses(fm_run) == losses(tmp_path / "again")


def test_a_resume_reuses_the_thread_count_its_run_started_with(store_path, fm_run, tmp_path) -> None:
    """The CPU thread count changes reduction order, so checkpoints record it and a resume in a process
    with another count goes back to it: the resumed weights still equal the uninterrupted run's."""
    recorded = json.loads((fm_run / "checkpoints" / "step_00000002" / "state.json").read_text())["config"]["threads"]
    assert recorded == torch.get_num_threads()
    shutil.copytree(fm_run, tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step_00000004")
    torch.set_num_threads(recorded + 1)
    try:
        train_weather(tiny_config(store_path, 4), out=tmp_path / "b", progress=False)
        assert torch.get_num_threads() == recorded
    finally:
        torch.set_num_threads(recorded)
    straight, _ = load_forecaster(fm_run)
    again, _ = load_forecaster(tmp_path / "b")
    for name, p in straight.net.state_dict().items():
        assert torch.equal(p, again.net.state_dict()[name]), name


def test_training_killed_while_writing_a_checkpoint_resumes_to_the_uninterrupted_result(store_path, tmp_path) -> None:
    """``velocast train weather`` SIGKILLed with its step-4 checkpoint half written (weights saved, no state
    file, not renamed): rerun, it removes the abandoned write, logs no step twice and ends bitwise equal
    to an uninterrupted run."""
    import yaml

    from tests.killing import leftovers, run_killed_at, velocast

    path = tmp_path / "tiny.yaml"
    config = tiny_config(store_path, 6).model_dump(mode="json")
    config["train"]["threads"] = 1
    path.write_text(yaml.safe_dump(config))
    straight = velocast("train", "weather", "--config", str(path), "--out", str(tmp_path / "straight"), "--no-progress")
    assert straight.returncode == 0, straight.stderr[-2000:]
    args = ("train", "weather", "--config", str(path), "--out", str(tmp_path / "killed"), "--no-progress")
    run_killed_at("safetensors.torch:save_file", args, when="after", nth=2)
    assert len(leftovers(tmp_path / "killed")) == 1
    again = velocast(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert leftovers(tmp_path / "killed") == []
    a, _ = load_forecaster(tmp_path / "straight")
    b, _ = load_forecaster(tmp_path / "killed")
    for name, p in a.net.state_dict().items():
        assert torch.equal(p, b.net.state_dict()[name]), name

    def steps(run):
        return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert steps(tmp_path / "killed") == steps(tmp_path / "straight")


def test_deterministic_model_trains_with_mse(mse_run) -> None:
    """An mse run is deterministic, and everything it records says mse (one objective field)."""
    import json

    forecaster, ckpt = load_forecaster(mse_run)
    assert forecaster.deterministic
    state = json.loads((ckpt / "state.json").read_text())
    assert state["config"]["objective"] == "mse" and state["extra"]["objective"] == "mse"
    assert json.loads((mse_run / "train_config.json").read_text())["train"]["objective"] == "mse"
