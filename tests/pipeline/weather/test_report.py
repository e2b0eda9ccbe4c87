"""The weather report writes metrics.json, report.md and every promised plot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.weather.baselines import persistence
from pipeline.weather.metrics import score_systems
from pipeline.weather.report import write_report


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


def test_every_report_plot_is_non_trivial_and_labels_its_axes_with_units(tmp_path, monkeypatch) -> None:
    """The plots are looked at: each has several colours, every axis names its quantity with units (or says
    unitless), CRPS and RMSE are on a log axis, rank histograms cover every ensemble system, and the HTML twin
    of the report holds every plot inline."""
    import matplotlib.image as mpimg

    from pipeline.weather import report

    rng = np.random.default_rng(0)
    time = pd.date_range("2000-01-01", periods=40, freq="6h")
    lat, lon = np.linspace(-60, 60, 6), np.arange(0, 360, 30.0)
    base = 5e4 + rng.normal(size=(40, 1, 6, 12)).cumsum(0) * 50
    truth = xr.Dataset({"geopotential": (("time", "level", "latitude", "longitude"), base, {"units": "m**2 s**-2"}),
                        "temperature": (("time", "level", "latitude", "longitude"), 280 + base / 1e4 - 5,
                                        {"units": "K"})},
                       coords={"time": time, "level": [500], "latitude": lat, "longitude": lon})
    init, leads = time[4:12:2], pd.to_timedelta([6, 12, 18], unit="h")
    persist = persistence(truth, init_times=init, lead_times=leads)
    ensembles = {}
    for name, size in (("velocast", 1.0), ("perfect_model", 0.5)):
        ens = persist.isel(member=0, drop=True).expand_dims(member=np.arange(5)).copy(deep=True)
        for var in ens.data_vars:
            ens[var] = ens[var] + size * float(ens[var].std()) * 0.05 * rng.normal(size=ens[var].shape)
        ensembles[name] = ens.transpose("init_time", "lead_time", "member", ...)
    metrics = score_systems({**ensembles, "persistence": persist}, truth, variables=["geopotential", "temperature"])
    assert metrics["units"] == {"geopotential_500": "m**2 s**-2", "temperature_500": "K"}
    figures = {}
    save = report._save

    def looked_at(fig, path):
        figures[path.name] = [(ax.get_xlabel(), ax.get_ylabel(), ax.get_yscale()) for ax in fig.axes
                              if ax.get_visible() and ax.get_label() != "<colorbar>"]
        return save(fig, path)

    monkeypatch.setattr(report, "_save", looked_at)
    path = report.write_report(metrics, tmp_path, forecast=ensembles["velocast"], truth=truth)
    assert {"crps.png", "crps_skill.png", "rmse.png", "spread_skill.png", "acc.png", "rank_histograms.png",
            "case_maps.png", "plume.png"} <= set(figures)
    for name, axes in figures.items():
        for xlabel, ylabel, _ in axes:
            assert xlabel and ylabel and "(" in xlabel and "(" in ylabel, (name, xlabel, ylabel)
        image = mpimg.imread(tmp_path / name)
        colours = np.unique((image[..., :3] * 255).astype(int).reshape(-1, 3), axis=0)
        assert len(colours) > 20, (name, len(colours))
    assert figures["crps.png"][0][1] == "fair CRPS (m**2 s**-2)" and figures["crps.png"][1][1] == "fair CRPS (K)"
    assert all(scale == "log" for _, _, scale in figures["crps.png"] + figures["rmse.png"])
    assert len(figures["rank_histograms.png"]) == 2 * 3  # both ensembles × three leads
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(figures) and path.with_suffix(".html").exists()


def _regional_case(*, simulated: bool):
    """A small regional forecast and truth over the British Isles (lat 48…60, lon −12…4)."""
    rng = np.random.default_rng(1)
    time = pd.date_range("2021-07-01", periods=30, freq="1h")
    lat, lon = np.linspace(48, 60, 13), np.linspace(-12, 4, 17)
    t2m = 285 + rng.normal(size=(30, 13, 17)).cumsum(0) * 0.3 + np.linspace(0, 5, 17)[None, None, :]
    truth = xr.Dataset({"2m_temperature": (("time", "latitude", "longitude"), t2m, {"units": "K"})},
                       coords={"time": time, "latitude": lat, "longitude": lon},
                       attrs={"simulator_version": "hs-1"} if simulated else {})
    init, leads = time[[4, 8]], pd.to_timedelta([1, 2, 3], unit="h")
    persist = persistence(truth, init_times=init, lead_times=leads)
    ens = persist.isel(member=0, drop=True).expand_dims(member=np.arange(3)).copy(deep=True)
    ens["2m_temperature"] = ens["2m_temperature"] + rng.normal(size=ens["2m_temperature"].shape)
    return ens.transpose("init_time", "lead_time", "member", ...), truth


def test_case_maps_of_a_real_region_have_coastlines_units_and_an_error_panel(tmp_path) -> None:
    """Regional maps span the domain's own extent in °E/°N, with coastlines on the real Earth (none on the
    embedded atmosphere), colour bars in the channel's units, and an error panel; the PNG is not blank."""
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    from pipeline.weather import report

    real_map = plt.figure().add_subplot()
    report.map_axis(real_map, np.linspace(48, 60, 13), np.linspace(-12, 4, 17), coastlines=True)
    assert len(real_map.lines) > 3 and real_map.get_xlabel() == "longitude (°E)"
    assert real_map.get_xlim() == (-12.5, 4.5) and real_map.get_ylim() == (47.5, 60.5)
    plt.close("all")
    for simulated in (False, True):
        ens, truth = _regional_case(simulated=simulated)
        path = report.plot_case_maps(ens, truth, channel="2m_temperature", init_index=0, lead_index=1,
                                     path=tmp_path / f"maps-{simulated}.png")
        image = mpimg.imread(path)
        colours = np.unique((image[..., :3] * 255).astype(int).reshape(-1, 3), axis=0)
        assert len(colours) > 200
    assert report.is_real_earth(_regional_case(simulated=False)[1])
    assert not report.is_real_earth(_regional_case(simulated=True)[1])


def test_shipped_coastlines_cover_a_box_across_greenwich_in_its_convention() -> None:
    """The British Isles box −12…4 gets coastline pieces with longitudes inside it (not at 348…364)."""
    from pipeline.coastlines import coastlines
    from pipeline.geo import GridExtent

    extent = GridExtent.of(np.linspace(48, 60, 13), np.linspace(-12, 4, 17))
    pieces = coastlines(extent)
    assert pieces
    inside = np.concatenate([lon[(lat > 49) & (lat < 59)] for lon, lat in pieces])
    assert inside.size and ((inside > -13) & (inside < 5)).any()
    glob = coastlines(GridExtent.of(np.linspace(-88, 88, 45), np.arange(0, 360, 4.0)))
    assert min(lon.min() for lon, _ in glob) < 0 < max(lon.max() for lon, _ in glob) - 300
