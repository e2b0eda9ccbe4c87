"""Protein-scale benchmark (issue 22): does a 200-residue protein keep its chain and its fold?

    python tests/benchmarks/bench_protein_scale.py --case adk --out runs/scale          # AdK, real (see below)
    python tests/benchmarks/bench_protein_scale.py --case src --out runs/scale          # Src kinase, OpenMM
    python tests/benchmarks/bench_protein_scale.py --traj md.xtc --top top.pdb --out runs/scale   # your own
    ... --representations modes,cartesian --minutes 15                                 # designs side by side

Every case follows the README's path with the ``velocast`` command: ``ingest protein --select "name CA"``,
``train protein`` for ``--minutes`` per representation (the same wall-clock for each), ``sample protein --n 1000``,
``evaluate protein`` (its wall time and peak memory measured), and prints the goals of issue 22 as a table; the
results go to ``OUT/bench_protein_scale.json``.

Cases:

- ``adk``: adenylate kinase (214 residues), 98 frames of its closed → open transition (a DIMS path, CHARMM
  PSF/DCD, whose DCD header claims 500 frames) from the ``MDAnalysisTests`` package on PyPI
  (``pip install MDAnalysisTests``: 60 MB; or ``--adk-dir`` holding ``adk.psf`` and ``adk_dims.dcd``).
- ``src``: Src kinase (276 residues, 4,427 atoms) from ``openmmtools``' data, simulated here with OpenMM
  (Amber14, vacuum with a 1 nm reaction-field cutoff, HMR 4 fs, 300 K; ``--src-frames`` frames 1 ps apart,
  about 4 s each on one core), cached in ``OUT/src-md``. A geometry case, not a physical ensemble: vacuum.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from models.training import load_checkpoint

GOALS = {
    "chain_valid_fraction": ">= 0.95 of samples with every consecutive Cα–Cα within 0.3 Å of the training mean",
    "clash_free_fraction": ">= 0.95 clash-free (the training frames pass too)",
    "rg_mean": "Rg mean within 3 %",
    "rg_std": "Rg spread within 50 %",
    "pc1": "samples span the training frames' PC1 range",
    "novel": "median RMSD to the nearest training frame above the training frames' own",
    "evaluate": "evaluate protein within 2 GB and 2 minutes",
}


def velocast(*args: str) -> float:
    """Run ``velocast ARGS`` (this interpreter's); returns its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", *args], check=True)
    return time.perf_counter() - start


def adk_files(adk_dir: Path | None) -> tuple[Path, Path]:
    if adk_dir is not None:
        return adk_dir / "adk_dims.dcd", adk_dir / "adk.psf"
    try:
        from MDAnalysisTests.datafiles import DCD, PSF
    except ImportError:
        sys.exit("the adk case needs `pip install MDAnalysisTests` (or --adk-dir with adk.psf and adk_dims.dcd)")
    return Path(DCD), Path(PSF)


def simulate_src(out: Path, frames: int) -> tuple[Path, Path]:
    """Src kinase MD (module docstring), cached: (DCD, PDB)."""
    import openmm
    import openmm.unit as u
    import openmmtools
    from openmm import app

    dcd, pdb_out = out / f"src-{frames}.dcd", out / "src.pdb"
    if dcd.exists() and pdb_out.exists():
        return dcd, pdb_out
    out.mkdir(parents=True, exist_ok=True)
    pdb = app.PDBFile(str(Path(openmmtools.__file__).parent / "data/src-implicit/1yi6-minimized.pdb"))
    system = app.ForceField("amber14-all.xml").createSystem(
        pdb.topology, nonbondedMethod=app.CutoffNonPeriodic, nonbondedCutoff=1.0 * u.nanometer,
        constraints=app.HBonds, hydrogenMass=3 * u.amu)
    integrator = openmm.LangevinMiddleIntegrator(300 * u.kelvin, 1 / u.picosecond, 4 * u.femtosecond)
    integrator.setRandomNumberSeed(1)
    sim = app.Simulation(pdb.topology, system, integrator, openmm.Platform.getPlatformByName("CPU"),
                         {"Threads": "1"})
    sim.context.setPositions(pdb.positions)
    sim.minimizeEnergy(maxIterations=500)
    sim.context.setVelocitiesToTemperature(300 * u.kelvin, 1)
    sim.step(2500)  # 10 ps of equilibration
    with open(pdb_out, "w") as handle:
        app.PDBFile.writeFile(pdb.topology, sim.context.getState(getPositions=True).getPositions(), handle)
    partial = dcd.with_suffix(".partial.dcd")
    sim.reporters.append(app.DCDReporter(str(partial), 250))
    start = time.perf_counter()
    for k in range(10):
        sim.step(frames * 250 // 10)
        print(f"src MD {10 * (k + 1)} % ({time.perf_counter() - start:.0f} s)", flush=True)
    sim.reporters.clear()
    partial.rename(dcd)
    return dcd, pdb_out


def evaluate_measured(out: Path, samples: Path, training: Path) -> tuple[dict, float, float]:
    """(metrics, wall seconds, peak MiB) of ``velocast evaluate protein`` in its own process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds = velocast("evaluate", "protein", "--samples", str(samples), "--reference", str(training),
                       "--training", str(training), "--out", str(out))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, the largest child so far
    metrics = json.loads((out / "metrics.json").read_text())
    return metrics, seconds, max(peak, before) / 1024.0


def goal_rows(metrics: dict, seconds: float, peak_mib: float) -> dict[str, tuple[str, bool]]:
    fold = metrics["fold"]
    rg, nearest, pc1 = fold["rg_angstrom"], fold["nearest_md_rmsd_angstrom"], fold["pc1"]
    return {
        "chain_valid_fraction": (f"{fold['chain_valid_fraction']:.3f} (training {fold['md_chain_valid_fraction']:.3f})",
                                 fold["chain_valid_fraction"] >= 0.95),
        "clash_free_fraction": (f"{metrics['clash_free_fraction']:.3f} (training "
                                f"{metrics['reference_clash_free_fraction']:.3f})",
                                metrics["clash_free_fraction"] >= 0.95 and metrics["reference_clash_free_fraction"] >= 0.95),
        "rg_mean": (f"{rg['samples']['mean']:.2f} vs {rg['md']['mean']:.2f} Å ({100 * fold['rg_mean_relative_error']:+.1f} %)",
                    abs(fold["rg_mean_relative_error"]) <= 0.03),
        "rg_std": (f"{rg['samples']['std']:.2f} vs {rg['md']['std']:.2f} Å ({100 * fold['rg_std_relative_error']:+.0f} %)",
                   abs(fold["rg_std_relative_error"]) <= 0.5),
        "pc1": (f"{pc1['coverage']:.3f} of [{pc1['md_range'][0]:.2f}, {pc1['md_range'][1]:.2f}] nm",
                pc1["coverage"] >= 0.99),
        "novel": (f"{nearest['samples_median']:.2f} vs {nearest['md_own_median']:.2f} Å",
                  nearest["samples_median"] > nearest["md_own_median"]),
        "evaluate": (f"{seconds:.0f} s, {peak_mib:,.0f} MiB", seconds <= 120 and peak_mib <= 2048),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=("adk", "src"), default=None)
    parser.add_argument("--traj", nargs="+", default=None, help="your own trajectory files (instead of --case)")
    parser.add_argument("--top", default=None, help="their topology")
    parser.add_argument("--time-step-ps", default="1", help="frame spacing of DCD/PDB inputs")
    parser.add_argument("--select", default="name CA", help="the atoms modelled (mdtraj selection)")
    parser.add_argument("--adk-dir", type=Path, default=None)
    parser.add_argument("--src-frames", type=int, default=300)
    parser.add_argument("--representations", default="modes", help="comma-separated, trained side by side")
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall-clock per representation")
    parser.add_argument("--n", type=int, default=1000, help="samples drawn")
    parser.add_argument("--out", type=Path, default=Path("runs/scale"))
    parser.add_argument("--reuse", action="store_true", help="keep models and samples already in OUT; evaluate again")
    args = parser.parse_args(argv)
    if (args.case is None) == (args.traj is None):
        parser.error("give --case or --traj (with --top)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    name = args.case or Path(args.traj[0]).stem
    work = args.out / name
    work.mkdir(parents=True, exist_ok=True)
    if args.case == "adk":
        traj, top = adk_files(args.adk_dir)
        trajs = [str(traj)]
    elif args.case == "src":
        traj, top = simulate_src(args.out / "src-md", args.src_frames)
        trajs = [str(traj)]
    else:
        trajs, top = args.traj, args.top
    store = work / "train.zarr"
    if not store.exists():
        velocast("ingest", "protein", "--traj", *trajs, *(["--top", str(top)] if top else []), "--select",
                 args.select, "--time-step-ps", args.time_step_ps, "--out", str(store))
    results: dict = {"case": name, "select": args.select, "minutes": args.minutes, "n": args.n,
                     "date": time.strftime("%Y-%m-%d"), "representations": {}}
    for representation in args.representations.split(","):
        model, samples, report = (work / f"{kind}-{representation}" for kind in ("model", "samples", "report"))
        if not (args.reuse and (samples / "samples.zarr").exists()):
            velocast("train", "protein", "--data", str(store), "--representation", representation, "--steps",
                     "10000000", "--max-minutes", str(args.minutes), "--out", str(model), "--no-progress")
            velocast("sample", "protein", "--model", str(model), "--n", str(args.n), "--out", str(samples))
        metrics, seconds, peak = evaluate_measured(report, samples / "samples.zarr", store)
        rows = goal_rows(metrics, seconds, peak)
        results["representations"][representation] = {
            "goals": {k: {"measured": v[0], "met": v[1]} for k, v in rows.items()},
            "fold": metrics["fold"], "clash_free_fraction": metrics["clash_free_fraction"],
            "training_clash_free_fraction": metrics["reference_clash_free_fraction"],
            "evaluate_seconds": seconds, "evaluate_peak_mib": peak, "tic1": metrics["fold"].get("tic1"),
            "samples_per_cpu_second": metrics.get("samples_per_cpu_second"),
            "train_steps": load_checkpoint(model).step,
        }
    print(f"\ncase {name} ({args.select}), {args.minutes:g} min of training each, {args.n} samples")
    reps = list(results["representations"])
    print(f"{'goal':<72} " + " ".join(f"{r:<34}" for r in reps))
    for key, text in GOALS.items():
        cells = []
        for r in reps:
            goal = results["representations"][r]["goals"][key]
            cells.append(f"{goal['measured'][:28]:<28} {'yes' if goal['met'] else 'NO':<5}")
        print(f"{text[:72]:<72} " + " ".join(cells))
    path = args.out / f"bench_protein_scale_{name}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
