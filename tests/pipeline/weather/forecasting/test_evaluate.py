"""evaluate_weather: every baseline is scored on velocast's cases and the report is complete."""

from __future__ import annotations

import json

import pytest

from pipeline.weather.forecasting.evaluate import EvaluateConfig, evaluate_weather
from pipeline.weather.forecasting.forecast import ForecastConfig, forecast_weather
from pipeline.weather.forecasting.train import train_weather
from tests.pipeline.weather.forecasting.test_train import config as train_config
from tests.pipeline.weather.forecasting.test_train import store_path  # noqa: F401  (fixture)


def test_evaluate_scores_all_systems(store_path, tmp_path) -> None:  # noqa: F811
    common = dict(data=store_path, init_times=["2000-01-06/2000-01-08/12h"], lead="12h", sampler="euler",
                  sampler_steps=2)
    train_weather(train_config(store_path, 2), out=tmp_path / "fm", progress=False)
    train_weather(train_config(store_path, 2, objective="mse"), out=tmp_path / "det", progress=False)
    forecast_weather(ForecastConfig(model=str(tmp_path / "fm"), members=3, **common), out=tmp_path / "f",
                     progress=False)
    forecast_weather(ForecastConfig(model=str(tmp_path / "det"), **common), out=tmp_path / "d", progress=False)
    metrics = evaluate_weather(
        EvaluateConfig(forecast=str(tmp_path / "f"), truth=store_path, deterministic=str(tmp_path / "d")),
        out=tmp_path / "report",
    )
    assert set(metrics["scores"]) == {"velocast", "persistence", "climatology", "deterministic",
                                      "deterministic_noise"}
    assert metrics["members"]["climatology"] == 3 and metrics["members"]["deterministic"] == 1
    assert metrics["lead_hours"] == [6, 12]
    assert metrics["variables"] == ["surface_pressure", "temperature_500", "temperature_850"]
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["scores"]["persistence"]["crps"] == metrics["scores"]["persistence"]["crps"]
    assert (tmp_path / "report" / "report.md").exists()


def test_missing_forecast_store_is_a_clear_error(store_path, tmp_path) -> None:  # noqa: F811
    with pytest.raises(FileNotFoundError, match="forecast store not found"):
        evaluate_weather(EvaluateConfig(forecast=str(tmp_path / "nope"), truth=store_path), out=tmp_path / "r")
