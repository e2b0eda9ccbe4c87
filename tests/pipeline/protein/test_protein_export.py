"""Export of structure stores to PDB (multi-model), XTC, DCD and H5 that load back in mdtraj."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.protein.export import export_structures
from pipeline.protein.store import write_structure_store

TOL = {"pdb": 6e-4, "xtc": 6e-4, "dcd": 1e-5, "h5": 1e-6}


def _load(path: Path, top: Path):
    import mdtraj

    if path.suffix == ".h5":  # H5 carries its own topology
        return mdtraj.load(str(path))
    return mdtraj.load(str(path), top=str(top))


def test_frame_store_exports_every_format_and_loads_back(tmp_path: Path, ala_traj) -> None:
    """(frame, atom, xyz) -> structures.{pdb,xtc,dcd,h5} + topology.pdb; coordinates and bonds survive."""
    pytest.importorskip("tables", reason="PyTables (`tables`) is needed for mdtraj's H5 format")
    store = write_structure_store(
        tmp_path / "s.zarr", coordinates=ala_traj.xyz, topology=ala_traj.topology, attrs={"time_step_ps": 2.0}
    )
    paths = export_structures(store, tmp_path / "out", formats=("pdb", "xtc", "dcd", "h5"))
    assert {p.name for p in paths} == {
        "topology.pdb",
        "structures.pdb",
        "structures.xtc",
        "structures.dcd",
        "structures.h5",
    }
    assert (tmp_path / "out" / "structures.pdb").read_text().count("MODEL") == 12
    for fmt, tol in TOL.items():
        back = _load(tmp_path / "out" / f"structures.{fmt}", tmp_path / "out" / "topology.pdb")
        assert back.n_frames == 12, fmt
        np.testing.assert_allclose(back.xyz, ala_traj.xyz, atol=tol, err_msg=fmt)
        assert back.topology.n_bonds == 21


def test_sample_store_flattens_and_member_store_writes_one_file_per_member(tmp_path: Path, ala_traj) -> None:
    """(sample, frame, …) -> one file of all samples; (member, frame, …) -> member_000.*, member_001.*."""
    x = ala_traj.xyz[:12].reshape(3, 4, 22, 3)
    samples = write_structure_store(
        tmp_path / "samples.zarr",
        coordinates=x,
        topology=ala_traj.topology,
        dims=("sample", "frame", "atom", "xyz"),
    )
    export_structures(samples, tmp_path / "s_out", formats=("xtc",))
    back = _load(tmp_path / "s_out" / "structures.xtc", tmp_path / "s_out" / "topology.pdb")
    np.testing.assert_allclose(back.xyz, ala_traj.xyz, atol=6e-4)

    members = write_structure_store(
        tmp_path / "fc.zarr",
        coordinates=x,
        topology=ala_traj.topology,
        dims=("member", "frame", "atom", "xyz"),
        attrs={"time_step_ps": 1.0},
    )
    export_structures(members, tmp_path / "m_out", formats=("pdb", "dcd"))
    for m in range(3):
        for fmt in ("pdb", "dcd"):
            back = _load(tmp_path / "m_out" / f"member_{m:03d}.{fmt}", tmp_path / "m_out" / "topology.pdb")
            np.testing.assert_allclose(back.xyz, x[m], atol=TOL[fmt])


def test_unknown_format_is_a_user_error(tmp_path: Path, ala_traj) -> None:
    """An unsupported format name is rejected before anything is written."""
    from pipeline.errors import UserError

    store = write_structure_store(tmp_path / "s.zarr", coordinates=ala_traj.xyz, topology=ala_traj.topology)
    with pytest.raises(UserError, match="unknown export format"):
        export_structures(store, tmp_path / "out", formats=("gro",))  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()
