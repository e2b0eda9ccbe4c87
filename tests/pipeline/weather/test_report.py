"""The weather report writes metrics.json, report.md and every promised plot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.weather.metrics import score_systems
from pipeline.weather.report import write_report
from pipeline.weather.baselines import persistence


def test_report_has_metrics_tables_and_plots(tmp_path) -> None:
    rng = np.random.default_rng(0)
    time = pd.date_range("2000-01-01", periods=40, freq="6h")
    lat, lon = np.linspace(-60, 60, 4), np.arange(0, 360, 45.0)
    truth = xr.Dataset(
        {"geopotential": (("time", "level", "latitude", "longitude"),
                          5e4 + rng.normal(size=(40, 1, 4, 8)).cumsum(0))},
        coords={"time": time, "level": [500], "latitude": lat, "longitude": lon},
    )
    init, leads = time[4:12:2], pd.to_timedelta([6, 12, 18], unit="h")
    persist = persistence(truth, init_times=init, lead_times=leads)
    ens = persist.isel(member=0, drop=True).expand_dims(member=np.arange(4)).copy(deep=True)
    ens["geopotential"] = ens["geopotential"] + rng.normal(size=ens["geopotential"].shape)
    ens = ens.transpose("init_time", "lead_time", "member", ...)
    metrics = score_systems({"velocast": ens, "persistence": persist}, truth, variables=["geopotential"])
    report = write_report(metrics, tmp_path, forecast=ens, truth=truth)
    text = report.read_text()
    assert "## Fair CRPS (lower is better): geopotential_500" in text
    assert "| velocast |" in text and "| persistence |" in text
    assert json.loads((tmp_path / "metrics.json").read_text())["variables"] == ["geopotential_500"]
    for name in ("crps", "rmse", "spread_skill", "acc", "rank_histograms", "case_maps", "plume"):
        png = tmp_path / f"{name}.png"
        assert png.stat().st_size > 5000, name
        assert f"({name}.png)" in text
