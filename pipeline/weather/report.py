"""Weather verification report: ``metrics.json``, ``report.md`` and PNG plots.

Plots: CRPS and RMSE against lead per system (one panel per headline channel), spread/skill against
lead, rank histograms, maps of ensemble mean / spread / truth for one case, and a plume at one point.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from pipeline.evaluation.html import write_html
from pipeline.provenance import is_simulated
from pipeline.weather.metrics import channel_arrays, truth_at_valid_times
from pipeline.weather.schema import short_channel_name

SYSTEM_STYLE: dict[str, dict] = {
    "velocast": {"color": "tab:red", "lw": 2.2},
    "perfect_model": {"color": "black", "ls": "--"},
    "persistence": {"color": "tab:gray"},
    "climatology": {"color": "tab:olive"},
    "deterministic": {"color": "tab:blue"},
    "deterministic_noise": {"color": "tab:cyan"},
}


def _headline(metrics: dict, limit: int = 4) -> list[str]:
    preferred = [v for v in ("geopotential_500", "temperature_850") if v in metrics["variables"]]
    rest = [v for v in metrics["variables"] if v not in preferred]
    return (preferred + rest)[:limit]


HEADLINE_LEADS_H = (6, 12, 24, 72, 120, 240)


def headline_rows(metrics: dict, *, metric: str = "crps") -> list[dict]:
    """``metric`` of the headline channels (Z500, T850) at a few leads, one row per system (the first key
    is the system)."""
    leads = metrics["lead_hours"]
    picks = [i for i, h in enumerate(leads) if h in HEADLINE_LEADS_H] or list(range(len(leads)))
    channels = [c for c in ("geopotential_500", "temperature_850") if c in metrics["variables"]]
    channels = channels or metrics["variables"][:2]
    rows = []
    for system, scores in metrics["scores"].items():
        row: dict = {"system": system}
        for channel in channels:
            values = scores.get(metric, {}).get(channel) or [None] * len(leads)
            for i in picks:
                row[f"{short_channel_name(channel)} {leads[i]:g}h"] = values[i]
        rows.append(row)
    return rows


METRIC_LABEL = {"crps": "fair CRPS", "rmse": "ensemble-mean RMSE", "ssr": "spread/skill", "acc": "ACC"}
PANEL_COLUMNS = 4


def _units(metrics: dict, channel: str) -> str:
    return str(metrics.get("units", {}).get(channel) or "")


def _with_units(label: str, units: str) -> str:
    return f"{label} ({units})" if units else label


def _grid(n: int, *, width: float = 4.2, height: float = 3.3) -> tuple[plt.Figure, list]:
    cols = min(n, PANEL_COLUMNS)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _system_lines(ax, metrics: dict, metric: str, channel: str, *, transform=None) -> None:  # type: ignore[no-untyped-def]
    leads = metrics["lead_hours"]
    for system, by_metric in metrics["scores"].items():
        values = by_metric.get(metric, {}).get(channel)
        if values is None or all(v is None for v in values):
            continue
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        if transform is not None:
            y = transform(system, y)
            if y is None:
                continue
        ax.plot(leads, y, marker="o", ms=3, label=system, **SYSTEM_STYLE.get(system, {}))


def _log_axis(ax) -> None:  # type: ignore[no-untyped-def]
    """A log y axis labelled in plain numbers (every minor tick too when the data span less than a decade)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    low, high = ax.get_ylim()
    ax.yaxis.set_minor_formatter(plain if high / max(low, 1e-300) < 10 else NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: What each plot shows, printed under it in the report ({channel}: the plot's channel).
CAPTIONS: dict[str, str] = {
    "crps": "Fair CRPS of every system against lead, per channel (log axis; lower is better).",
    "crps_skill": "CRPS skill score 1 − CRPS/CRPS_ref against persistence and against climatology: above 0 the "
                  "system beats the reference, 1 is perfect.",
    "rmse": "Debiased ensemble-mean RMSE against lead, per channel (log axis; lower is better).",
    "ssr": "Spread/skill ratio against lead: 1 (dotted) is a calibrated ensemble, below 1 under-dispersed.",
    "acc": "Anomaly correlation of the ensemble mean with the truth (anomalies from the day-of-year climatology; "
           "the climatology's own anomaly is zero, so its ACC is 0). Above 0.6: useful skill.",
    "rank": "Rank histograms of {channel} for every ensemble: flat (dotted line) is calibrated, U-shaped "
            "under-dispersed, domed over-dispersed.",
    "maps": "{channel}: ensemble mean, truth, error (mean − truth) and spread (member std) of one case.",
    "plume": "{channel}: every member (thin), the ensemble mean and the truth at one grid point over the leads.",
}


def plot_metric(metrics: dict, metric: str, path: Path) -> Path:
    """``metric`` against lead for every system, one panel per channel (all channels; CRPS and RMSE on a log
    axis, so systems whose errors differ by orders of magnitude stay apart)."""
    channels = _headline(metrics, limit=len(metrics["variables"]))
    fig, axes = _grid(len(channels))
    for ax, channel in zip(axes, channels):
        _system_lines(ax, metrics, metric, channel)
        units = _units(metrics, channel) if metric in ("crps", "rmse") else "unitless"
        if metric in ("crps", "rmse"):
            _log_axis(ax)
        if metric == "ssr":
            ax.axhline(1.0, color="k", lw=1.0, ls=":", label="ideal (1)")
        if metric == "acc":
            ax.axhline(0.0, color=SYSTEM_STYLE["climatology"]["color"], lw=1.2, label="climatology (0 by definition)")
            ax.axhline(0.6, color="k", lw=0.8, ls=":", label="useful skill (0.6)")
        ax.set_title(channel)
        ax.set_xlabel("lead (hours)")
        ax.set_ylabel(_with_units(METRIC_LABEL[metric], units))
        ax.grid(alpha=0.3, which="both")
    if axes and axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_crps_skill(metrics: dict, path: Path) -> Path | None:
    """CRPS skill score 1 − CRPS / CRPS_ref against persistence (top row) and climatology (bottom row) for the
    headline channels: 0 is no better than the reference, 1 is perfect."""
    references = [r for r in ("persistence", "climatology") if r in metrics["scores"]]
    if not references:
        return None
    channels = _headline(metrics)
    fig, axes = plt.subplots(len(references), len(channels), figsize=(4.2 * len(channels), 3.3 * len(references)),
                             squeeze=False)
    for row, reference in enumerate(references):
        for ax, channel in zip(axes[row], channels):
            ref = np.array([np.nan if v is None else v for v in metrics["scores"][reference]["crps"][channel]])

            def skill(system: str, y: np.ndarray, ref: np.ndarray = ref, reference: str = reference) -> np.ndarray | None:
                return None if system == reference else 1.0 - y / np.where(ref > 0, ref, np.nan)

            _system_lines(ax, metrics, "crps", channel, transform=skill)
            ax.axhline(0.0, color="k", lw=0.8)
            low, _ = ax.get_ylim()
            ax.set_ylim(max(low, -1.0), 1.02)  # below −1 (twice the reference's CRPS) the curve leaves the panel
            ax.set_title(f"{channel}: skill vs {reference}")
            ax.set_xlabel("lead (hours)")
            ax.set_ylabel("CRPS skill score (unitless)")
            ax.grid(alpha=0.3)
        if axes[row][0].get_legend_handles_labels()[0]:
            axes[row][0].legend(fontsize=7)
    return _save(fig, path)


def plot_rank_histograms(metrics: dict, path: Path, *, channel: str) -> Path | None:
    """Rank histograms of every ensemble system (rows) at three leads (first, middle, last) for ``channel``."""
    systems = [s for s, by_channel in metrics.get("rank_histograms", {}).items() if by_channel.get(channel)]
    if not systems:
        return None
    leads = metrics["lead_hours"]
    picks = sorted({0, len(leads) // 2, len(leads) - 1})
    fig, axes = plt.subplots(len(systems), len(picks), figsize=(3.2 * len(picks), 2.4 * len(systems)),
                             squeeze=False, sharey=True)
    for row, system in enumerate(systems):
        colour = SYSTEM_STYLE.get(system, {}).get("color", "tab:purple")
        for col, lead_index in enumerate(picks):
            freq = np.asarray(metrics["rank_histograms"][system][channel][lead_index])
            ax = axes[row][col]
            ax.bar(np.arange(1, freq.size + 1), freq, color=colour, alpha=0.75)
            ax.axhline(1 / freq.size, color="k", lw=0.8, ls=":")
            ax.set_title(f"{system}, {leads[lead_index]:g} h", fontsize=9)
            ax.set_xlabel("rank of the truth (1 … members + 1)")
            ax.set_ylabel("frequency (fraction)")
    fig.suptitle(f"rank histograms: {channel}")
    return _save(fig, path)


def is_real_earth(dataset: xr.Dataset) -> bool:
    """Whether a store holds the real Earth (coastlines belong on its maps): not the embedded simulator's."""
    return not is_simulated(dataset.attrs)


def map_axis(ax, lat: np.ndarray, lon: np.ndarray, *, coastlines: bool) -> None:  # type: ignore[no-untyped-def]
    """A lat/lon map axis over the grid's own extent: degree labels, equal-area-ish aspect (1/cos of the mid
    latitude), and the coastlines when the domain is the real Earth."""
    from pipeline.coastlines import draw_coastlines
    from pipeline.geo import GridExtent

    extent = GridExtent.of(lat, lon)
    west = extent.lon_west if not extent.periodic else float(lon[0]) - 0.5 * float(np.median(np.diff(lon)))
    ax.set_xlim(west, west + extent.lon_span)
    ax.set_ylim(extent.lat_min, extent.lat_max)
    mid = np.deg2rad(0.5 * (extent.lat_min + extent.lat_max))
    ax.set_aspect(1.0 / max(np.cos(mid), 0.2))
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    if coastlines:
        draw_coastlines(ax, extent)


def plot_case_maps(forecast: xr.Dataset, truth: xr.Dataset, *, channel: str, init_index: int,
                   lead_index: int, path: Path) -> Path:
    """Ensemble mean, truth, error (mean − truth) and ensemble spread of one channel for one case, on the
    domain's own lat/lon extent, coastlines where the domain is the real Earth, colour bars in the channel's
    units."""
    fc = channel_arrays(forecast)[channel].isel(init_time=init_index, lead_time=lead_index)
    init = forecast["init_time"].values[init_index : init_index + 1]
    lead = forecast["lead_time"].values[lead_index : lead_index + 1]
    observed = channel_arrays(truth)[channel]
    units = str(observed.attrs.get("units") or fc.attrs.get("units") or "")
    obs = truth_at_valid_times(observed, init, lead).isel(init_time=0, lead_time=0)
    lat, lon = fc["latitude"].values, fc["longitude"].values
    mean, std = fc.mean("member").values, fc.std("member").values
    error = mean - obs.values
    vmin, vmax = float(min(mean.min(), obs.min())), float(max(mean.max(), obs.max()))
    worst = float(np.abs(error).max()) or 1.0
    extent_wide = (lon.max() - lon.min()) / max(lat.max() - lat.min(), 1e-6)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.9 if extent_wide > 1.6 else 4.6))
    coast = is_real_earth(truth)
    for ax, field, title, label, kwargs in (
        (axes[0], mean, "ensemble mean", units, {"vmin": vmin, "vmax": vmax, "cmap": "viridis"}),
        (axes[1], obs.values, "truth", units, {"vmin": vmin, "vmax": vmax, "cmap": "viridis"}),
        (axes[2], error, "error (mean − truth)", units, {"vmin": -worst, "vmax": worst, "cmap": "RdBu_r"}),
        (axes[3], std, "ensemble spread (std)", units, {"vmin": 0.0, "cmap": "magma"}),
    ):
        mesh = ax.pcolormesh(lon, lat, field, shading="auto", **kwargs)
        bar = fig.colorbar(mesh, ax=ax, shrink=0.8)
        bar.set_label(label)
        map_axis(ax, lat, lon, coastlines=coast)
        ax.set_title(title)
    hours = pd.Timedelta(lead[0]).total_seconds() / 3600
    valid = pd.Timestamp(init[0]) + pd.Timedelta(lead[0])
    fig.suptitle(f"{channel} ({units}): init {pd.Timestamp(init[0]):%Y-%m-%d %H}Z, lead {hours:g} h, "
                 f"valid {valid:%Y-%m-%d %H}Z")
    return _save(fig, path)


def plot_plume(forecast: xr.Dataset, truth: xr.Dataset, *, channel: str, init_index: int,
               latitude: float, longitude: float, path: Path) -> Path:
    """Every member's path over the leads at the grid point nearest (latitude, longitude), with truth."""
    fc = channel_arrays(forecast)[channel].isel(init_time=init_index)
    fc = fc.sel(latitude=latitude, longitude=longitude, method="nearest")
    init = forecast["init_time"].values[init_index : init_index + 1]
    obs = truth_at_valid_times(channel_arrays(truth)[channel], init, forecast["lead_time"].values)
    obs = obs.isel(init_time=0).sel(latitude=latitude, longitude=longitude, method="nearest")
    hours = pd.TimedeltaIndex(forecast["lead_time"].values).total_seconds() / 3600
    fig, ax = plt.subplots(figsize=(7, 3.6))
    members = fc.transpose("member", "lead_time").values
    ax.plot(hours, members.T, color="tab:red", alpha=0.35, lw=0.8)
    ax.plot(hours, members.mean(0), color="tab:red", lw=2, label="ensemble mean")
    ax.plot(hours, obs.values, color="k", lw=2, label="truth")
    ax.set_xlabel("lead (hours)")
    units = str(channel_arrays(truth)[channel].attrs.get("units") or "")
    ax.set_ylabel(f"{channel} ({units})" if units else channel)
    ax.set_title(f"{channel} at {float(fc.latitude):.1f}°, {float(fc.longitude):.1f}° "
                 f"(init {pd.Timestamp(init[0]):%Y-%m-%d %H}Z)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _table(metrics: dict, metric: str, channel: str, systems: Sequence[str]) -> list[str]:
    leads = metrics["lead_hours"]
    lines = ["| system | " + " | ".join(f"{h} h" for h in leads) + " |",
             "|---|" + "---|" * len(leads)]
    for system in systems:
        values = metrics["scores"][system].get(metric, {}).get(channel)
        if values is None:
            continue
        cells = ["–" if v is None else f"{v:.4g}" for v in values]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return lines


def write_report(metrics: dict, out_dir: Path, *, forecast: xr.Dataset | None = None,
                 truth: xr.Dataset | None = None, title: str = "velocast weather verification",
                 notes: Sequence[str] = ()) -> Path:
    """Write ``metrics.json``, the plots and ``report.md`` into ``out_dir``; returns the report path.

    ``forecast`` and ``truth`` (optional) add the case maps and the plume plot.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    channel = _headline(metrics, 1)[0]
    plots: list[tuple[Path, str]] = [
        (plot_metric(metrics, "crps", out_dir / "crps.png"), CAPTIONS["crps"]),
        (plot_crps_skill(metrics, out_dir / "crps_skill.png"), CAPTIONS["crps_skill"]),
        (plot_metric(metrics, "rmse", out_dir / "rmse.png"), CAPTIONS["rmse"]),
        (plot_metric(metrics, "ssr", out_dir / "spread_skill.png"), CAPTIONS["ssr"]),
        (plot_metric(metrics, "acc", out_dir / "acc.png"), CAPTIONS["acc"]),
    ]
    for name in _headline(metrics, 2):
        suffix = "" if name == channel else f"_{name}"
        plots.append((plot_rank_histograms(metrics, out_dir / f"rank_histograms{suffix}.png", channel=name),
                      CAPTIONS["rank"].format(channel=name)))
    if forecast is not None and truth is not None:
        mid = forecast.sizes["lead_time"] // 2
        plots.append((plot_case_maps(forecast, truth, channel=channel, init_index=0, lead_index=mid,
                                     path=out_dir / "case_maps.png"), CAPTIONS["maps"].format(channel=channel)))
        lat = float(forecast["latitude"].values[len(forecast["latitude"]) // 4])
        plots.append((plot_plume(forecast, truth, channel=channel, init_index=0, latitude=lat,
                                 longitude=float(forecast["longitude"].values[0]), path=out_dir / "plume.png"),
                      CAPTIONS["plume"].format(channel=channel)))
    plots = [(path, caption) for path, caption in plots if path is not None]

    systems = list(metrics["scores"])
    lines = [f"# {title}", "",
             f"{metrics['n_init_times']} init times; members: "
             + ", ".join(f"{s} {m}" for s, m in metrics["members"].items()) + ".", ""]
    lines += [f"- {note}" for note in notes]
    if notes:
        lines.append("")
    for metric, label in (("crps", "Fair CRPS (lower is better)"), ("rmse", "Debiased ensemble-mean RMSE"),
                          ("ssr", "Spread/skill ratio (1 is ideal)"), ("acc", "ACC (higher is better)")):
        for name in _headline(metrics):
            units = f" ({_units(metrics, name)})" if metric in ("crps", "rmse") and _units(metrics, name) else ""
            lines += [f"## {label}: {name}{units}", ""] + _table(metrics, metric, name, systems) + [""]
    lines += ["## Plots", ""]
    for path, caption in plots:
        lines += [f"![{caption}]({path.name})", "", f"*{caption}*", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    write_html(report, title=title)
    return report
