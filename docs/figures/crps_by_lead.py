"""The README's picture: the default weather run's fair CRPS by lead, velocast against the baselines.

Reads the measured tables of docs/results/weather.md ("CRPS geopotential_500 ...", "CRPS temperature_850 ...")
and plots them on a log axis, so the figure always shows the numbers the results page reports:

    python docs/figures/crps_by_lead.py --out docs/images/crps-by-lead.png
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results" / "weather.md"
PANELS = (("geopotential_500", "Z500 fair CRPS (m² s⁻²)"), ("temperature_850", "T850 fair CRPS (K)"))
STYLE = {"velocast": ("tab:red", "-", 2.5), "persistence": ("tab:gray", "--", 1.5),
         "climatology": ("tab:olive", ":", 1.5), "deterministic": ("tab:blue", "-.", 1.5),
         "deterministic_noise": ("tab:cyan", "-", 1.5), "perfect_model": ("black", "--", 1.5)}


def read_table(text: str, variable: str) -> tuple[list[float], dict[str, list[float]]]:
    """(lead hours, system → CRPS by lead) of the table headed ``CRPS <variable>``."""
    block = re.search(rf"^CRPS {variable}\b.*?\n\n(\|.*?)(?:\n\n|\Z)", text, flags=re.MULTILINE | re.DOTALL)
    if block is None:
        raise SystemExit(f"{RESULTS}: no table 'CRPS {variable}'")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in block.group(1).splitlines()]
    leads = [float(cell.split()[0]) for cell in rows[0][1:]]
    return leads, {row[0]: [float(v) for v in row[1:]] for row in rows[2:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("crps-by-lead.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    text = RESULTS.read_text()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for ax, (variable, label) in zip(axes, PANELS):
        leads, systems = read_table(text, variable)
        for name, values in systems.items():
            colour, line, width = STYLE.get(name, ("tab:purple", "-", 1.5))
            ax.plot(leads, values, line, color=colour, lw=width, marker="o", ms=3, label=name)
        ax.set_yscale("log")
        ax.set_xticks(leads[2:] if len(leads) > 4 else leads)
        ax.set_xlabel("lead time (hours)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Held–Suarez atmosphere, 20 test init times, 10 members (lower is better)", fontsize=10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
