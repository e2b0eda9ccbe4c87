"""Export a structure store to files VMD, PyMOL and mdtraj open: multi-model PDB, XTC, DCD (and H5).

Layout of the output directory by the store's leading dimension:

- ``(frame, atom, xyz)`` (MD / ingest)  -> ``structures.pdb``, ``structures.xtc``, ``structures.dcd``
- ``(sample, frame, atom, xyz)``        -> the same single files, samples (and their frames) in order
- ``(member, frame, atom, xyz)``        -> ``member_000.pdb``, ``member_000.xtc`` … one file per member

XTC and DCD carry no topology: each export also writes ``topology.pdb`` (first structure) to load them
with, e.g. ``mdtraj.load("structures.xtc", top="topology.pdb")``. Coordinates are nm in the store
(mdtraj converts to Å for PDB/DCD; XTC stores nm at 10⁻³ nm precision).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

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
