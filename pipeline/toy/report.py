"""The toy report: a scatter of the samples over the mixture and ``report.md`` beside ``metrics.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.toy import eight_gaussians
from pipeline.evaluation.html import write_html


def plot_samples(samples: np.ndarray, path: Path, *, title: str) -> Path:
    """A scatter of ``samples`` (blue) over as many fresh draws of the mixture (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref, _ = eight_gaussians(len(samples), generator=torch.Generator().manual_seed(0))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(ref[:, 0], ref[:, 1], s=2, alpha=0.3, color="0.6", label="data")
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.6, color="C0", label="samples")
    ax.set_aspect("equal")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title)
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
    return path


def write_report(metrics: dict[str, Any], samples: np.ndarray, out: Path) -> Path:
    """Write ``samples.png`` and ``report.md`` into ``out``; returns the report path."""
    plot_samples(samples, out / "samples.png", title=f"{metrics['n']} samples, NFE {metrics['nfe']}")
    weights = " ".join(f"{w:.3f}" for w in metrics["mode_weights"])
    lines = ["# velocast toy: 8-Gaussian mixture", "",
             "| metric | value |", "|---|---|",
             f"| sliced W2 to fresh data | {metrics['sliced_w2']:.4f} |",
             f"| sliced W2 between two fresh draws (floor) | {metrics['sliced_w2_floor']:.4f} |",
             f"| largest mode-weight error (ideal 0) | {metrics['mode_weight_error']:.4f} |",
             f"| network calls per sample | {metrics['nfe']} |", "",
             f"Mode weights (ideal 0.125 each): {weights}", "", "![samples](samples.png)", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    write_html(report)
    return report
