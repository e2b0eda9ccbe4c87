"""The protein report: plots (matplotlib Agg) and ``report.md`` beside ``metrics.json``.

Files: ``report.md``, ``rama.png``
(Ramachandran densities side by side, basin boundaries drawn), ``free_energy_phi.png``,
``sample.png`` (3-D stick rendering of the first sample), ``autocorrelation.png`` (forecasts only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.protein.metrics import KT_KJ_PER_MOL_300K, MIN_LAG_PAIRS

FES_MAX_KJ_PER_MOL = 25.0
"""The colour scale's top: the free energy of a bin visited once in the equal-size subsample is about kT ln N."""

CAPTIONS = {
    "rama.png": "Free-energy surfaces F(φ, ψ) of the samples and the MD sets, equal-size subsamples, with the "
                "β, αR and αL basin boundaries.",
    "free_energy_phi.png": "Free energy along φ of every set (kJ/mol at 300 K, minimum 0).",
    "sample.png": "The first sample drawn as sticks, coloured by element.",
    "autocorrelation.png": "Circular autocorrelation of φ and ψ of the forecast trajectories and the reference "
                           "MD, over the lags estimated from enough frame pairs.",
    "rmsf.png": "Per-residue RMSF about each set's mean structure.",
    "fold.png": "Radius of gyration, position along the MD frames' first principal component, and RMSD to the "
                "nearest MD frame, of the samples and the MD frames.",
}

ELEMENT_COLOURS = {"H": "#bbbbbb", "C": "#404040", "N": "#2f5fd0", "O": "#d03030", "S": "#d0b030"}


def free_energy_surface(histogram: np.ndarray, *, kt: float = KT_KJ_PER_MOL_300K) -> np.ndarray:
    """F = −kT ln p per bin (kJ/mol), minimum 0; NaN where the bin is empty."""
    p = np.asarray(histogram, dtype=float)
    p = p / max(p.sum(), 1e-300)
    with np.errstate(divide="ignore"):
        f = -kt * np.log(p)
    f[~np.isfinite(f)] = np.nan
    return f - np.nanmin(f) if np.isfinite(f).any() else f


def write_plots(out: Path, *, arrays: dict[str, Any], samples: Any) -> list[str]:
    """Write the PNGs into ``out``; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    if "hists" in arrays:
        names += _ramachandran_plots(out, arrays, plt)
    if "fold" in arrays:
        names += _fold_plots(out, arrays["fold"], plt)
    names += _dynamics_plots(out, arrays, samples, plt)
    return names


def _fold_plots(out: Path, fold: dict[str, Any], plt: Any) -> list[str]:
    """fold.png: Rg, PC1 and nearest-frame RMSD histograms of the samples and the MD frames."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [(fold["rg"], "radius of gyration of the Cα (Å)"),
              ({k: v[:, 0] for k, v in fold["pcs"].items()}, "projection on the MD frames' PC1 (nm)"),
              (fold["nearest"], "RMSD to the nearest MD frame (Å)")]
    for ax, (values, label) in zip(axes, panels):
        everything = np.concatenate([np.ravel(v) for v in values.values()])
        edges = np.linspace(everything.min(), everything.max(), 41)
        for name, v in values.items():
            shown = {"md": "MD frames (own nearest, self left out)" if "RMSD" in label else "MD frames"}
            ax.hist(np.ravel(v), bins=edges, density=True, histtype="step", lw=1.5, label=shown.get(name, name))
        ax.set_xlabel(label)
        ax.set_ylabel("density (1/unit)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fold.png", dpi=110)
    plt.close(fig)
    return ["fold.png"]


def _ramachandran_plots(out: Path, arrays: dict[str, Any], plt: Any) -> list[str]:
    names = []
    hists = arrays["hists"]
    fig, axes = plt.subplots(1, len(hists), figsize=(4.6 * len(hists), 4), squeeze=False)
    surfaces = {name: free_energy_surface(h) for name, h in hists.items()}
    top = FES_MAX_KJ_PER_MOL
    for ax, (name, surface) in zip(axes[0], surfaces.items()):
        image = ax.imshow(surface.T, origin="lower", extent=[-180, 180, -180, 180], cmap="viridis_r", vmin=0,
                          vmax=top, aspect="equal")
        ax.set_title(f"{name} (equal-size subsample)")
        ax.set_xlabel("φ (°)")
        ax.set_ylabel("ψ (°)")
        ax.set_facecolor("#f4f4f4")  # never-visited bins
        style = {"color": "0.35", "lw": 0.7}
        ax.axvline(0, **style)
        ax.plot([-180, 0], [50, 50], **style)
        ax.plot([-180, 0], [-150, -150], **style)
        ax.plot([0, 180], [100, 100], ls="--", **style)
        ax.plot([0, 180], [-100, -100], ls="--", **style)
        ax.text(-175, 165, "β", fontsize=9)
        ax.text(-175, 35, "αR", fontsize=9)
        ax.text(5, 85, "αL", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8, label="F = −kT ln p (kJ/mol, 300 K; min 0)")
    fig.suptitle("Free-energy surface over (φ, ψ), 36×36 bins; grey: never visited")
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
    return names


def _dynamics_plots(out: Path, arrays: dict[str, Any], samples: Any, plt: Any) -> list[str]:
    names = []
    render_structure(out / "sample.png", samples.frames()[0], samples.topology, title="first sample")
    names.append("sample.png")

    if "autocorrelation" in arrays:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for ax, angle in zip(axes, ("phi", "psi")):
            for name, acf in arrays["autocorrelation"].items():
                values = np.asarray(acf[angle], dtype=float)
                ax.plot(np.asarray(acf["lag_ps"])[np.isfinite(values)], values[np.isfinite(values)], label=name)
            ax.set_xlabel("lag τ (ps)")
            ax.set_ylabel(f"C_{angle}(τ) (unitless)")
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(f"lags with ≥ {MIN_LAG_PAIRS} frame pairs and ≥ half of lag 0's", fontsize=9)
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "autocorrelation.png", dpi=110)
        plt.close(fig)
        names.append("autocorrelation.png")
    if arrays.get("rmsf"):
        fig, ax = plt.subplots(figsize=(max(5.5, 0.12 * len(next(iter(arrays["rmsf"].values()))["residues"])), 3.6))
        for name, rmsf in arrays["rmsf"].items():
            ax.plot(np.arange(len(rmsf["residues"])), rmsf["rmsf_angstrom"], marker="o", ms=3, label=name)
        labels = next(iter(arrays["rmsf"].values()))["residues"]
        step = max(1, len(labels) // 30)
        ax.set_xticks(np.arange(0, len(labels), step), labels[::step], rotation=90 if len(labels) > 8 else 0,
                      fontsize=8)
        ax.set_xlabel("residue")
        ax.set_ylabel("RMSF (Å)")
        ax.set_title("about each set's mean structure (Cα, else all atoms)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "rmsf.png", dpi=110)
        plt.close(fig)
        names.append("rmsf.png")
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
    from pipeline.protein.graph import virtual_ca_links

    links = [(b.atom1.index, b.atom2.index) for b in topology.bonds] + virtual_ca_links(topology).tolist()
    for a, b in links:
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


def fold_table(fold: dict[str, Any]) -> list[str]:
    """The chain-and-fold rows of the report (:mod:`pipeline.protein.fold`)."""
    rg, nearest, pc1, contacts = fold["rg_angstrom"], fold["nearest_md_rmsd_angstrom"], fold["pc1"], fold["contacts"]
    return [
        "", f"## Chain and fold (Cα, against the {fold['against']} frames)", "",
        "| metric | samples | MD frames |", "|---|---|---|",
        f"| every consecutive Cα–Cα within {fold['chain_tolerance_angstrom']:.1f} Å of the MD mean (fraction) | "
        f"{_fmt(fold['chain_valid_fraction'])} | {_fmt(fold['md_chain_valid_fraction'])} |",
        f"| radius of gyration, mean ± sd (Å) | {rg['samples']['mean']:.2f} ± {rg['samples']['std']:.2f} | "
        f"{rg['md']['mean']:.2f} ± {rg['md']['std']:.2f} |",
        f"| median RMSD to the nearest MD frame (Å; MD: self left out) | {nearest['samples_median']:.2f} | "
        f"{nearest['md_own_median']:.2f} |",
        f"| PC1 range (nm) | {pc1['samples_range'][0]:.2f} … {pc1['samples_range'][1]:.2f} | "
        f"{pc1['md_range'][0]:.2f} … {pc1['md_range'][1]:.2f} |",
        f"| MD PC1 range covered by the samples | {_fmt(pc1['coverage'])} | |",
        *([f"| TIC1 (lag {fold['tic1']['lag_frames']} frames): MD range covered, JS distance of the histograms | "
           f"{_fmt(fold['tic1']['coverage'])}, {_fmt(fold['tic1']['js_distance'])} | |"] if "tic1" in fold else []),
        f"| Cα contact map ({contacts['cutoff_angstrom']:.0f} Å): mean abs. difference, correlation | "
        f"{_fmt(contacts['mean_abs_difference'])}, {_fmt(contacts['correlation'])} | |",
    ]


def render_markdown(metrics: dict[str, Any], plots: list[str]) -> str:
    """report.md: headline metrics, basin table, definitions, plots."""
    lines = ["# Protein evaluation report", ""]
    lines += ["| metric | value |", "|---|---|"]
    if metrics.get("rama_js") is not None:
        lines += [
            f"| Ramachandran JS distance, samples vs reference (`rama_js`) | {_fmt(metrics['rama_js'])} |",
            f"| … training data vs reference (`rama_js_training`) | {_fmt(metrics['rama_js_training'])} |",
            f"| structures per set compared (equal-size, evenly spaced subsample) | {metrics['rama_js_n']} |",
        ]
    lines += [
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
    ]
    if "fold" in metrics:
        lines += fold_table(metrics["fold"])
    if metrics.get("basins"):
        lines += ["", "## Basin populations", "", "| set | β/C7eq | αR | αL | other |", "|---|---|---|---|---|"]
        for name, pops in metrics["basins"].items():
            lines.append(
                f"| {name} | {pops['beta']:.3f} | {pops['alpha_r']:.3f} | {pops['alpha_l']:.3f} "
                f"| {pops['other']:.3f} |"
            )
        if "training" in metrics["basins"]:
            err = abs(metrics["basins"]["training"]["alpha_r"] - metrics["basins"]["reference"]["alpha_r"])
            lines += ["", f"The training data's own αR error against the reference: {err:.3f}."]
    md = metrics["md_decorrelation"]
    if md.get("tau_ps") is not None:
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
        lines += ["", "## Transitions between core-set basins", "",
                  "| set | simulated time (ns) | β → αR | β → αL | αR → β | αR → αL | αL → β | αL → αR "
                  "| rate out of β, αR, αL (per ns) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, t in metrics["transitions"].items():
            c = t["counts"]
            rates = ", ".join(_fmt(v) for v in t["rate_out_per_ns"].values())
            lines.append(f"| {name} | {t['time_ns']:.3f} | {c[0][1]} | {c[0][2]} | {c[1][0]} | {c[1][2]} | {c[2][0]} "
                         f"| {c[2][1]} | {rates} |")
        its = metrics.get("implied_timescales")
        if its:
            lines += ["", f"Implied timescales of a Markov state model (deeptime, reversible maximum likelihood) of the "
                          f"core-set basins at lag {its['lag_ps']:g} ps, the two slowest processes (ps; 95 % credible "
                          "interval of the Bayesian MSM in brackets):", "",
                      "| set | t₁ | t₂ |", "|---|---|---|"]
            for name in ("samples", "reference"):
                cis = its.get(f"{name}_ci95") or [None, None]
                cells = [_fmt(v) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "") for v, ci in zip(its[name], cis)]
                lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
            lines.append(f"| ratio | {_fmt(its['ratio'][0])} | {_fmt(its['ratio'][1])} |")
    lines += ["", "## Definitions", ""]
    if metrics.get("basins"):
        lines += [
            "- JS distance: sqrt of the Jensen–Shannon divergence, log base 2 (in [0, 1]), of 36×36 (10°) (φ, ψ) "
            "histograms over [-180°, 180°)², each set subsampled to the same size with evenly spaced indices.",
            "- Basins (degrees): " + "; ".join(f"{k}: {v}" for k, v in metrics["basin_definitions_deg"].items()) + ".",
            "- Free energy along φ: −kT ln p(φ), 36 bins, 300 K, minimum set to 0.",
            "- Decorrelation: integrated autocorrelation time of the circular autocorrelation of φ and ψ (larger "
            "of the two), summed to the first non-positive lag.",
        ]
    lines += [
        "- Bond validity: every bond within 0.1 Å of the force field's equilibrium length; clash: two heavy atoms "
        "more than three links apart whose van der Waals spheres (MolProbity radii) overlap by 0.6 Å or more; N/O "
        "pairs (hydrogen bonds) and acid–base pairs (salt bridges) only closer than 2.2 Å.",
    ]
    if "fold" in metrics:
        lines += ["- Chain and fold: Cα only; nearest-frame RMSD after optimal superposition; PC1 of the MD frames' "
                  "aligned Cα coordinates (scikit-learn PCA); contacts: Cα pairs ≥ 3 residues apart within 8 Å, "
                  "compared over pairs in contact in ≥ 5 % of either set (docs/concepts/molecules.md)."]
    lines.append("")
    for name in plots:
        caption = CAPTIONS.get(name, name)
        lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    return "\n".join(lines)

