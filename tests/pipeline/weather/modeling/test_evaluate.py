"""evaluate_weather: every baseline is scored on velocast's cases and the report is complete."""

from __future__ import annotations

import json

import pytest

from pipeline.weather.modeling.evaluate import EvaluateConfig, evaluate_weather
from pipeline.weather.modeling.generate import ForecastConfig, forecast_weather


def test_evaluate_scores_all_systems(store_path, fm_run, mse_run, tmp_path) -> None:
    common = dict(data=store_path, init_times=["2000-01-06/2000-01-08/12h"], lead="12h", sampler="euler",
                  sampler_steps=2)
    forecast_weather(ForecastConfig(model=str(fm_run), members=3, **common), out=tmp_path / "f", progress=False)
    forecast_weather(ForecastConfig(model=str(mse_run), **common), out=tmp_path / "d", progress=False)
    metrics = evaluate_weather(
        EvaluateConfig(forecast=str(tmp_path / "f"), truth=store_path, deterministic=str(tmp_path / "d")),
        out=tmp_path / "report",
    )
    assert set(metrics["scores"]) == {"velocast", "persistence", "climatology", "deterministic",
                                      "deterministic_noise"}
    assert metrics["members"]["climatology"] == 3 and metrics["members"]["deterministic"] == 1
    assert metrics["lead_hours"] == [6, 12]
    assert metrics["variables"] == ["surface_pressure", "temperature_500", "temperature_850"]  # sorted by name
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["scores"]["persistence"]["crps"] == metrics["scores"]["persistence"]["crps"]
    assert (tmp_path / "report" / "report.md").exists()


def test_missing_forecast_store_is_a_clear_error(store_path, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="forecast store not found"):
        evaluate_weather(EvaluateConfig(forecast=str(tmp_path / "nope"), truth=store_path), out=tmp_path / "r")
