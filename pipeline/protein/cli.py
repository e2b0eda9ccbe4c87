"""CLI: ``velocast ingest protein`` and ``velocast simulate peptide`` (the verbs: :mod:`pipeline.protein.domain`).

Heavy libraries (mdtraj, openmm, matplotlib) are imported inside the command bodies.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.root import group


@group("ingest").command("protein")
def ingest_protein_cmd(
    traj: list[str] = typer.Option(..., "--traj", help="Trajectory file(s) (any format mdtraj reads) or 'builtin:"
                                   "alanine-dipeptide?ns=5&seed=0'. Repeat, or list several after one --traj."),
    out: Path = typer.Option(..., "--out", help="Output Zarr v3 store (replaced atomically if it exists)."),
    top: Path | None = typer.Option(None, "--top", help="Topology file (PDB, prmtop, PSF, GRO, H5 …); optional when "
                                                        "the trajectory carries one (PDB, H5)."),
    select: str | None = typer.Option(None, "--select", help="mdtraj atom selection, e.g. 'backbone', 'not element "
                                                             "H', 'name CA' (default: all atoms)."),
    stride: int = typer.Option(1, "--stride", min=1, help="Keep every N-th frame."),
    align_to: str | None = typer.Option(None, "--align-to", help="Kabsch-align all frames to this frame index (of "
                                                                 "the ingested frames) or to a structure file "
                                                                 "(PDB/H5/GRO)."),
    time_step_ps: float | None = typer.Option(None, "--time-step-ps", help="Spacing of the input frames in ps, for "
                                                                           "formats that store no time (DCD, PDB); "
                                                                           "default: read from the files."),
    extra: list[str] | None = typer.Argument(
        None, help="More trajectory files (same as --traj).", show_default=False
    ),
) -> None:
    """Ingest MD trajectories into a Zarr v3 structure store (coordinates in nm, topology, provenance)."""
    from pipeline.console import console
    from pipeline.protein.ingest import ingest_protein
    from pipeline.protein.store import open_structure_store

    path = ingest_protein(traj=list(traj) + list(extra or []), out=out, top=top, select=select, stride=stride,
                          align_to=align_to, time_step_ps=time_step_ps)
    store = open_structure_store(path)
    dt = store.time_step_ps
    console.print(
        f"wrote {path}: {store.coordinates.shape[0]} frames × {store.n_atoms} atoms from "
        f"{len(store.trajectory_start)} trajector{'y' if len(store.trajectory_start) == 1 else 'ies'}"
        + (f", {dt:g} ps per frame" if dt else "")
    )


@group("simulate").command("peptide")
def simulate_peptide_cmd(
    out: Path = typer.Option(..., "--out", help="Output Zarr v3 structure store."),
    ns: float = typer.Option(1.0, "--ns", help="Simulated nanoseconds per replica (after equilibration)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the integrator noise and initial velocities."),
    replicas: int = typer.Option(1, "--replicas", min=1, help="Independent replicas (parallel processes)."),
    vacuum: bool = typer.Option(False, "--vacuum", help="Vacuum instead of OBC2 implicit solvent."),
    save_every_ps: float = typer.Option(1.0, "--save-every-ps", help="Spacing of saved frames in ps."),
    equilibrate_ps: float = typer.Option(20.0, "--equilibrate-ps", help="Equilibration before saving, ps."),
    platform: str = typer.Option("auto", "--platform", help="OpenMM platform: auto (CUDA if present, else "
                                                            "Reference), Reference, CPU, CUDA."),
    processes: int | None = typer.Option(None, "--processes", help="Parallel processes (default: all cores)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Simulate even if a cached result exists."),
) -> None:
    """Simulate alanine dipeptide (amber ff96, OBC2, 300 K, Langevin 1/ps, 2 fs, HBonds) with OpenMM."""
    from pipeline.console import console
    from pipeline.errors import UserError
    from pipeline.protein.simulate import PeptideSimulation, simulate_peptide
    from pipeline.protein.store import open_structure_store

    if platform not in ("auto", "Reference", "CPU", "CUDA", "OpenCL"):
        raise UserError(f"--platform must be auto, Reference, CPU, CUDA or OpenCL, got {platform!r}")
    params = PeptideSimulation(ns=ns, seed=seed, vacuum=vacuum, replicas=replicas, save_every_ps=save_every_ps,
                               equilibrate_ps=equilibrate_ps, platform=platform)  # type: ignore[arg-type]
    from pipeline.provenance import utc_now

    _started = utc_now()
    path = simulate_peptide(params=params, out=out, processes=processes, use_cache=not no_cache)
    store = open_structure_store(path)
    prov = store.attrs["provenance"]
    speed = prov.get("ns_per_day_per_replica") or 0.0
    per_cpu = prov.get("ns_per_cpu_day") or 0.0
    console.print(
        f"wrote {path}: {store.coordinates.shape[0]} frames × {store.n_atoms} atoms, {replicas} replica(s); "
        f"{prov['recipe']['platform']} platform: {speed:,.0f} ns/day per replica (wall), "
        f"{per_cpu:,.0f} ns per CPU-day, {store.attrs['md_cpu_seconds']:.1f} CPU-s "
        f"(simulated {prov['created']}{', from cache' if prov.get('created', '') < _started else ''})"
    )
