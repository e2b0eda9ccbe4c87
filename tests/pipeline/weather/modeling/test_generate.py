"""Forecast command engine: one Icechunk commit per init time, schema and units, provenance, idempotence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.forecast_store import ForecastStore
from pipeline.weather.modeling.data import parse_init_times, parse_lead
from pipeline.weather.modeling.generate import ForecastConfig, forecast_weather


def test_init_time_and_lead_parsing() -> None:
    times = parse_init_times(["2000-01-02T00,2000-01-01T12", "2000-01-03/2000-01-04/12h"])
    assert list(times.strftime("%dT%H")) == ["01T12", "02T00", "03T00", "03T12", "04T00"]
    assert parse_lead("5d", pd.Timedelta("6h")) == 20
    assert parse_lead("18h", pd.Timedelta("6h")) == 3
    with pytest.raises(ValueError, match="multiple"):
        parse_lead("5h", pd.Timedelta("6h"))
    with pytest.raises(ValueError, match="10d or 120h"):
        parse_lead("ten days", pd.Timedelta("6h"))


def test_forecast_writes_one_commit_per_cycle_and_skips_reruns(store_path, fm_run, tmp_path) -> None:
    run = fm_run
    out = tmp_path / "forecast"
    cfg = ForecastConfig(model=str(run), data=store_path, init_times=["2000-01-02T00/2000-01-02T12/6h"],
                         members=3, lead="18h", sampler="euler", sampler_steps=2, batch_size=4)
    summary = forecast_weather(cfg, out=out, progress=False)
    assert len(summary.written) == 3 and summary.lead_steps == 3
    store = ForecastStore.open(out)
    ds = store.dataset()
    assert ds["temperature"].dims == ("init_time", "lead_time", "member", "level", "latitude", "longitude")
    assert ds.sizes["member"] == 3 and ds.sizes["lead_time"] == 3
    assert ds["surface_pressure"].attrs["units"] == "Pa"
    # Physical units: surface pressure near 1e5 Pa, not normalised values near 0.
    assert 5e4 < float(ds["surface_pressure"].mean()) < 2e5
    prov = store.provenance("2000-01-02T06")
    assert prov["checkpoint"].startswith("sha256:") and prov["source"] == "velocast forecast weather"
    commits_before = len(store.snapshots())
    again = forecast_weather(cfg, out=out, progress=False)
    assert again.written == [] and len(again.skipped) == 3
    assert len(ForecastStore.open(out).snapshots()) == commits_before
    assert np.isfinite(ds["temperature"].values).all()


def test_missing_history_is_a_clear_error(store_path, fm_run, tmp_path) -> None:
    run = fm_run
    cfg = ForecastConfig(model=str(run), data=store_path, init_times=["2000-01-01T00"], members=2, lead="6h",
                         sampler="euler", sampler_steps=1)
    with pytest.raises(ValueError, match="init time 2000-01-01T00:00 needs the state at 1999-12-31T18:00, which the data do not hold"):
        forecast_weather(cfg, out=tmp_path / "f", progress=False)
    assert not (tmp_path / "f").exists()


def test_noise_scale_for_an_unknown_variable_is_refused_before_the_store_exists(store_path, fm_run, tmp_path) -> None:
    cfg = ForecastConfig(model=str(fm_run), data=store_path, init_times=["2000-01-02T00"], members=2, lead="6h",
                         sampler="euler", sampler_steps=1, noise_scale={"vorticity": 0.5})
    with pytest.raises(ValueError, match="vorticity"):
        forecast_weather(cfg, out=tmp_path / "f", progress=False)
    assert not (tmp_path / "f").exists()


def test_a_cycles_members_do_not_depend_on_the_other_cycles_or_the_batch(store_path, fm_run, tmp_path) -> None:
    """Forecasting 3 init times at once, or one then the other two with another batch size (a resumed or
    re-ordered run), writes identical members: each member's noise is (seed, init time, member)."""
    common = dict(model=str(fm_run), data=store_path, members=3, lead="12h", sampler="heun", sampler_steps=2,
                  noise_memory=0.5)
    forecast_weather(ForecastConfig(**common, init_times=["2000-01-02T00/2000-01-02T12/6h"], batch_size=9),
                     out=tmp_path / "all", progress=False)
    forecast_weather(ForecastConfig(**common, init_times=["2000-01-02T12"], batch_size=2), out=tmp_path / "parts",
                     progress=False)
    forecast_weather(ForecastConfig(**common, init_times=["2000-01-02T00,2000-01-02T06"], batch_size=4),
                     out=tmp_path / "parts", progress=False)
    whole = ForecastStore.open(tmp_path / "all").dataset().sortby("init_time").load()
    parts = ForecastStore.open(tmp_path / "parts").dataset().sortby("init_time").load()
    for name in whole.data_vars:
        np.testing.assert_array_equal(whole[name].values, parts[name].values)
    assert float(whole["temperature"].std("member").mean()) > 0  # the members do differ from each other


def test_a_cycle_that_is_not_finite_is_never_committed(store_path, fm_run, tmp_path) -> None:
    """A model whose (finite) weights blow the state up to inf: the cycle is refused in one line, and no store
    is created."""
    import torch

    from models.training.checkpoint import load_checkpoint, save_checkpoint
    from pipeline.errors import UserError

    ckpt = load_checkpoint(fm_run)
    blown = {k: v * 1e30 if v.is_floating_point() and v.ndim > 1 else v for k, v in ckpt.ema.items()}
    run = tmp_path / "blown"
    save_checkpoint(run, step=ckpt.step, model={k: v.clone() for k, v in blown.items()}, ema=blown, optimizer=None,
                    rng={}, config=ckpt.config,
                    extra=ckpt.extra)
    assert all(torch.isfinite(v).all() for v in blown.values())
    cfg = ForecastConfig(model=str(run), data=store_path, init_times=["2000-01-02T00"], members=2, lead="12h",
                         sampler="euler", sampler_steps=1)
    with pytest.raises(UserError, match=r"the forecast from 2000-01-02T00:00 has \d+ non-finite values"):
        forecast_weather(cfg, out=tmp_path / "f.icechunk", progress=False)
    assert not (tmp_path / "f.icechunk").exists()
