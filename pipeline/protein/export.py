"""Export a structure store to files VMD, PyMOL and mdtraj open: multi-model PDB, XTC, DCD (and H5).

Layout of the output directory by the store's leading dimension:

- ``(frame, atom, xyz)`` (MD / ingest)  -> ``structures.pdb``, ``structures.xtc``, ``structures.dcd``
- ``(sample, frame, atom, xyz)``        -> the same single files, samples (and their frames) in order
- ``(member, frame, atom, xyz)``        -> ``member_000.pdb``, ``member_000.xtc`` … one file per member

XTC and DCD carry no topology: each export also writes ``topology.pdb`` (first structure) to load them
with, e.g. ``mdtraj.load("structures.xtc", top="topology.pdb")``. Coordinates are nm in the store
(mdtraj converts to Å for PDB/DCD; XTC stores nm at 10⁻³ nm precision).

``velocast export protein STORE OUT`` (:func:`export_protein`) writes the same files for any store, for a subset
of its structures, or rebuilt all-atom from backbone samples (:mod:`pipeline.protein.rebuild`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from pipeline.config import StrictModel
from pipeline.errors import UserError

Format = Literal["pdb", "xtc", "dcd", "h5"]
ALL_FORMATS: tuple[Format, ...] = ("pdb", "xtc", "dcd")


def export_structures(
    store: str | Path,
    out_dir: str | Path,
    *,
    formats: Sequence[Format] = ALL_FORMATS,
    max_pdb_models: int | None = 1000,
) -> list[Path]:
    """Write the store's structures to ``out_dir`` in ``formats``; returns the written paths.

    ``max_pdb_models`` caps the models in each PDB (PDB is verbose; ``None`` writes all).
    """
    import mdtraj

    from pipeline.protein.store import _replace, _tmp_beside, open_structure_store

    bad = [f for f in formats if f not in ("pdb", "xtc", "dcd", "h5")]
    if bad:
        raise UserError(f"unknown export format(s) {bad}; choose from pdb, xtc, dcd, h5")
    opened = open_structure_store(store)
    data = np.asarray(opened.coordinates[...], dtype=np.float32)
    dims = opened.dims or ("frame", "atom", "xyz")
    if data.ndim == 4 and dims[0] == "member":
        groups = {f"member_{m:03d}": data[m] for m in range(data.shape[0])}
    else:
        groups = {"structures": data.reshape(-1, data.shape[-2], 3)}
    dt = opened.time_step_ps or 1.0
    out_dir = Path(out_dir)
    tmp = _tmp_beside(out_dir)
    written: list[Path] = []
    try:
        first = next(iter(groups.values()))
        mdtraj.Trajectory(first[:1], opened.topology).save_pdb(str(tmp / "topology.pdb"))
        written.append(out_dir / "topology.pdb")
        for name, xyz in groups.items():
            traj = mdtraj.Trajectory(xyz, opened.topology, time=np.arange(len(xyz)) * dt)
            for fmt in formats:
                target = tmp / f"{name}.{fmt}"
                if fmt == "pdb":
                    sub = traj if max_pdb_models is None else traj[:max_pdb_models]
                    sub.save_pdb(str(target))
                elif fmt == "xtc":
                    traj.save_xtc(str(target))
                elif fmt == "dcd":
                    traj.save_dcd(str(target))
                else:
                    traj.save_hdf5(str(target))
                written.append(out_dir / target.name)
        _replace(tmp, out_dir)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return written


class ExportProteinConfig(StrictModel):
    """Options of ``velocast export protein``."""

    store: str = Field(..., description="structure store (samples, forecasts, MD)")
    out: str = Field(..., description="output directory")
    all_atom: bool = Field(False, description="rebuild side chains (and OXT) of backbone structures with PDBFixer "
                                              "(pipeline.protein.rebuild) before exporting")
    hydrogens: bool = Field(False, description="with all_atom: add the hydrogens of pH 7 too")
    n: int | None = Field(None, ge=1, description="export this many evenly spaced structures (default: all; "
                                                  "with all_atom: 10)")
    seed: int = Field(0, description="seed of PDBFixer's clash-resolving dynamics")
    formats: list[Format] = Field(list(ALL_FORMATS), description="export formats (pdb, xtc, dcd, h5)")
    overwrite: bool = Field(False, description="replace an existing output")


def export_protein(config: ExportProteinConfig, *, out: object = None, progress: bool = True) -> dict:
    """Export ``config.store`` to ``config.out/exports``; a subset (``n``) or an all-atom rebuild is also written as
    a structure store, ``config.out/structures.zarr``.

    Structures are flattened in store order (samples, or each member's frames); ``n`` keeps that many evenly
    spaced ones. Everything is written beside the output and moved into place at the end: a failure leaves no
    partial output and an existing one untouched."""
    import shutil

    from pipeline.console import make_progress
    from pipeline.files import replace_into, temp_beside
    from pipeline.protein.geometry import even_subsample
    from pipeline.protein.store import open_structure_store, write_structure_store

    dest = Path(config.out)
    if dest.exists() and not config.overwrite:
        raise UserError(f"{dest} exists; pass --overwrite to replace it, or choose another output")
    opened = open_structure_store(config.store)
    n = config.n or (10 if config.all_atom else opened.n_structures)
    keep = even_subsample(opened.n_structures, n)
    topology, attrs = opened.topology, {}
    if config.all_atom:
        from pipeline.protein.rebuild import check_rebuildable, rebuild_all_atom

        check_rebuildable(topology)
        with make_progress(enabled=progress) as bar:
            task = bar.add_task("rebuild all atoms (PDBFixer)", total=len(keep))
            xyz, topology, seconds = rebuild_all_atom(opened.frames(keep), topology, hydrogens=config.hydrogens,
                                                      seed=config.seed, on_structure=lambda k: bar.advance(task, k))
        attrs["rebuild"] = {"tool": "pdbfixer", "version": _pdbfixer_version(), "hydrogens": config.hydrogens,
                            "cpu_seconds_per_structure": seconds, "from": str(config.store)}
    tmp = temp_beside(dest, directory=True)
    try:
        source: Path | str = config.store
        if config.all_atom or len(keep) < opened.n_structures:
            coordinates = xyz if config.all_atom else opened.frames(keep)
            source = write_structure_store(
                tmp / "structures.zarr", coordinates=coordinates[:, None], topology=topology,
                dims=("sample", "frame", "atom", "xyz"),
                attrs={"sources": [str(config.store)], "subset_of_structures": keep.tolist(), **attrs})
        written = export_structures(source, tmp / "exports", formats=tuple(config.formats)) if config.formats else []
        replace_into(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(dest), "structures": len(keep), "atoms": topology.n_atoms, "files": [p.name for p in written],
            "store": source != config.store, **attrs}


def _pdbfixer_version() -> str:
    from importlib.metadata import version

    return version("pdbfixer")


def export_summary(result: dict, config: ExportProteinConfig, out: object) -> str:
    """One line: what was written where (and the rebuild's cost)."""
    rebuilt = result.get("rebuild")
    how = (f", rebuilt all-atom with PDBFixer ({rebuilt['cpu_seconds_per_structure']:.1f} CPU-s per structure)"
           if rebuilt else "")
    return (f"wrote {result['structures']} structures × {result['atoms']} atoms{how} to {result['out']}: "
            f"{'structures.zarr and ' if result['store'] else ''}exports/ ({', '.join(result['files']) or 'no files'})")
