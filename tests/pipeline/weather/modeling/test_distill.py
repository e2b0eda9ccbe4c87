"""``velocast distill weather``: the student is an ordinary weather run that load_forecaster and
``velocast forecast weather`` use unchanged, defaulting to the Euler steps it was distilled for."""

from __future__ import annotations

import json

import pytest
import torch

from models.training.checkpoint import load_checkpoint
from pipeline.cli import main
from pipeline.weather.modeling.generate import ForecastConfig, forecast_weather
from pipeline.weather.modeling.model import load_forecaster
from pipeline.weather.modeling.train import train_weather
from tests.pipeline.weather.modeling.test_train import config as train_config
from tests.pipeline.weather.modeling.test_train import store_path  # noqa: F401  (fixture)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_distill_cli_writes_a_student_that_forecasts_with_its_own_steps(store_path, tmp_path, capsys,  # noqa: F811
                                                                        one_thread) -> None:
    teacher = tmp_path / "teacher"
    train_weather(train_config(store_path, 2), out=teacher, progress=False)
    variables = sorted({c.variable for c in load_forecaster(teacher)[0].channels})
    teacher_noise = {v: 0.5 + 0.1 * i for i, v in enumerate(variables)}
    (teacher / "calibration.json").write_text(json.dumps({"noise_scale": teacher_noise, "noise_memory": 0.4}))
    student = tmp_path / "student"
    with pytest.raises(SystemExit) as done:
        main(["distill", "weather", "--model", str(teacher), "--steps", "2", "--out", str(student), "--pairs", "8",
              "--train-steps", "3", "--teacher-steps", "2", "--set", "reflow.batch_size=4", "--no-progress"])
    assert done.value.code in (0, None)
    assert "euler x2" in " ".join(capsys.readouterr().out.split())
    inherited = json.loads((student / "calibration.json").read_text())
    assert inherited["noise_scale"] == teacher_noise and inherited["noise_memory"] == 0.4  # the teacher's λ, ρ
    ckpt = load_checkpoint(student)
    assert ckpt.extra["sampler"] == "euler" and ckpt.extra["sampler_steps"] == 2
    assert ckpt.extra["domain"] == "weather" and ckpt.extra["distillation"]["teacher_nfe"] == 4
    forecaster, _ = load_forecaster(student)
    teacher_forecaster, _ = load_forecaster(teacher)
    assert forecaster.channels == teacher_forecaster.channels and not forecaster.deterministic
    changed = any(not torch.equal(a, b) for a, b in zip(forecaster.net.state_dict().values(),
                                                      teacher_forecaster.net.state_dict().values()))
    assert changed, "the student's weights must differ from the teacher's"
    cfg = ForecastConfig(model=str(student), data=store_path, init_times=["2000-01-02T00"], members=2, lead="12h",
                         batch_size=4)
    summary = forecast_weather(cfg, out=tmp_path / "forecast", progress=False)
    assert summary.nfe_per_step == 2 and len(summary.written) == 1
    teacher_summary = forecast_weather(cfg.model_copy(update={"model": str(teacher)}), out=tmp_path / "f2",
                                       progress=False)
    assert teacher_summary.nfe_per_step == 16  # an undistilled model keeps the heun x 8 default


def test_distilling_into_a_non_empty_directory_is_a_user_error(store_path, tmp_path, capsys) -> None:  # noqa: F811
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(SystemExit) as done:
        main(["distill", "weather", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "busy")])
    assert done.value.code == 2
    assert "not empty" in capsys.readouterr().err
