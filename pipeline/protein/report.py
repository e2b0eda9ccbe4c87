"""The protein report: plots (matplotlib Agg) and ``report.md`` beside ``metrics.json``.

Files: ``report.md``, ``rama.png``
(Ramachandran densities side by side, basin boundaries drawn), ``free_energy_phi.png``,
``sample.png`` (3-D stick rendering of the first sample), ``autocorrelation.png`` (forecasts only).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

ELEMENT_COLOURS = {"H": "#bbbbbb", "C": "#404040", "N": "#2f5fd0", "O": "#d03030", "S": "#d0b030"}


def write_plots(out: Path, *, arrays: dict[str, Any], samples: Any) -> list[str]:
    """Write the PNGs into ``out``; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    hists = arrays["hists"]
    fig, axes = plt.subplots(1, len(hists), figsize=(4.2 * len(hists), 4), squeeze=False)
    vmax = max(float(h.max()) for h in hists.values()) or 1.0
    for ax, (name, h) in zip(axes[0], hists.items()):
        with np.errstate(divide="ignore"):
            img = np.log10(h.T)
        ax.imshow(
            img,
            origin="lower",
            extent=[-180, 180, -180, 180],
            cmap="viridis",
            vmin=math.log10(vmax) - 4,
            vmax=math.log10(vmax),
            aspect="equal",
        )
        ax.set_title(f"{name} (equal-size subsample)")
        ax.set_xlabel("φ (°)")
        ax.set_ylabel("ψ (°)")
        ax.set_facecolor("#f4f4f4")
        style = {"color": "0.35", "lw": 0.7}
        ax.axvline(0, **style)
        ax.plot([-180, 0], [50, 50], **style)
        ax.plot([-180, 0], [-150, -150], **style)
        ax.plot([0, 180], [100, 100], ls="--", **style)
        ax.plot([0, 180], [-100, -100], ls="--", **style)
        ax.text(-175, 165, "β", fontsize=9)
        ax.text(-175, 35, "αR", fontsize=9)
        ax.text(5, 85, "αL", fontsize=9)
    fig.suptitle("Ramachandran density, log10 p (36×36 bins)")
    fig.tight_layout()
    fig.savefig(out / "rama.png", dpi=110)
    plt.close(fig)
    names.append("rama.png")

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, (centres, f) in arrays["free_energy"].items():
        ax.plot(np.degrees(centres), f, marker="o", ms=3, label=name)
    ax.set_xlabel("φ (°)")
    ax.set_ylabel("F(φ) = −kT ln p  (kJ/mol, 300 K)")
    ax.set_xlim(-180, 180)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "free_energy_phi.png", dpi=110)
    plt.close(fig)
    names.append("free_energy_phi.png")

    render_structure(out / "sample.png", samples.frames()[0], samples.topology, title="first sample")
    names.append("sample.png")

    if "autocorrelation" in arrays:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for ax, angle in zip(axes, ("phi", "psi")):
            for name, acf in arrays["autocorrelation"].items():
                ax.plot(acf["lag_ps"], acf[angle], label=name)
            ax.set_xlabel("lag (ps)")
            ax.set_ylabel(f"C_{angle}(τ)")
            ax.axhline(0, color="k", lw=0.5)
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "autocorrelation.png", dpi=110)
        plt.close(fig)
        names.append("autocorrelation.png")
    return names


def render_structure(path: Path, xyz: np.ndarray, topology: Any, *, title: str = "") -> None:
    """A simple 3-D stick rendering (bonds as lines, atoms as element-coloured dots), in Å."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(xyz, dtype=float) * 10.0
    x = x - x.mean(axis=0)
    fig = plt.figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot(projection="3d")
    for bond in topology.bonds:
        a, b = bond.atom1.index, bond.atom2.index
        ax.plot(*zip(x[a], x[b]), color="#555555", lw=2)
    symbols = [a.element.symbol if a.element is not None else "" for a in topology.atoms]
    colours = [ELEMENT_COLOURS.get(s, "#8a2be2") for s in symbols]
    sizes = [20 if s == "H" else 60 for s in symbols]
    ax.scatter(x[:, 0], x[:, 1], x[:, 2], c=colours, s=sizes, depthshade=True, edgecolors="k", linewidths=0.3)
    span = float(np.abs(x).max()) or 1.0
    for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
        setter(-span, span)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_zlabel("z (Å)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return (
            f"{value:.{digits}g}"
            if abs(value) >= 1000 or abs(value) < 1e-3 and value != 0
            else f"{value:.{digits}f}"
        )
    return str(value)


def render_markdown(metrics: dict[str, Any], plots: list[str]) -> str:
    """report.md: headline metrics, basin table, definitions, plots."""
    lines = ["# Protein evaluation report", ""]
    lines += [
        "| metric | value |",
        "|---|---|",
        f"| Ramachandran JS distance, samples vs reference (`rama_js`) | {_fmt(metrics['rama_js'])} |",
        f"| … training data vs reference (`rama_js_training`) | {_fmt(metrics['rama_js_training'])} |",
        f"| structures per set compared (equal-size, evenly spaced subsample) | {metrics['rama_js_n']} |",
        f"| valid fraction (bonds within 0.1 Å and no clash) | {_fmt(metrics['valid_fraction'])} |",
        f"| bond-valid fraction / clash-free fraction | {_fmt(metrics['bond_valid_fraction'])} / "
        f"{_fmt(metrics['clash_free_fraction'])} |",
        f"| reference MD valid fraction (same test) | {_fmt(metrics.get('reference_valid_fraction'))} |",
        f"| reference MD bond-valid fraction | {_fmt(metrics.get('reference_bond_valid_fraction'))} |",
        f"| bond lengths from | {metrics['bond_length_source']} |",
        f"| samples per CPU-second | {_fmt(metrics['samples_per_cpu_second'])} |",
        "| MD independent samples per CPU-second | "
        f"{_fmt(metrics['md_independent_samples_per_cpu_second'])} |",
        f"| speed-up vs MD | {_fmt(metrics.get('speedup_vs_md'))} |",
        "",
        "## Basin populations",
        "",
        "| set | β/C7eq | αR | αL | other |",
        "|---|---|---|---|---|",
    ]
    for name, pops in metrics["basins"].items():
        lines.append(
            f"| {name} | {pops['beta']:.3f} | {pops['alpha_r']:.3f} | {pops['alpha_l']:.3f} "
            f"| {pops['other']:.3f} |"
        )
    if "training" in metrics["basins"]:
        err = abs(metrics["basins"]["training"]["alpha_r"] - metrics["basins"]["reference"]["alpha_r"])
        lines += ["", f"The training data's own αR error against the reference: {err:.3f}."]
    md = metrics["md_decorrelation"]
    lines += [
        "",
        "## MD decorrelation",
        "",
        f"From the {md['store']} store: τ_int(φ) = {_fmt(md.get('tau_phi_ps'))} ps, "
        f"τ_int(ψ) = {_fmt(md.get('tau_psi_ps'))} ps; "
        f"{_fmt(md.get('independent_samples'))} independent samples from {md.get('frames')} frames costing "
        f"{_fmt(md.get('md_cpu_seconds'))} CPU-s.",
    ]
    if metrics.get("kind") == "forecast":
        lines += ["", "## Transitions (core-set basins)", ""]
        for name, t in metrics["transitions"].items():
            lines.append(
                f"- {name}: {t['time_ns']:.3f} ns, counts {t['counts']} (rows from β, αR, αL), "
                f"rates out per ns {t['rate_out_per_ns']}"
            )
    lines += [
        "",
        "## Definitions",
        "",
        "- JS distance: sqrt of the Jensen–Shannon divergence, log base 2 (in [0, 1]), of 36×36 (10°) (φ, ψ) "
        "histograms over [-180°, 180°)², each set subsampled to the same size with evenly spaced indices.",
        "- Basins (degrees): "
        + "; ".join(f"{k}: {v}" for k, v in metrics["basin_definitions_deg"].items())
        + ".",
        "- Bond validity: every bond within 0.1 Å of the force field's equilibrium length; "
        "clash: atoms more than "
        "three bonds apart closer than 0.6 × the sum of Bondi radii.",
        "- Free energy along φ: −kT ln p(φ), 36 bins, 300 K, minimum set to 0.",
        "- Decorrelation: integrated autocorrelation time of the circular autocorrelation of φ and ψ (larger "
        "of the two), summed to the first non-positive lag.",
        "",
    ]
    for name in plots:
        lines += [f"![{name}]({name})", ""]
    return "\n".join(lines)
