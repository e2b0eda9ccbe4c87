"""Structure store: topology round trip (bonds included), layout, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.protein.store import StructureStoreWriter, open_structure_store, write_structure_store
from pipeline.protein.topology import topology_from_dict, topology_to_dict


def test_topology_json_round_trip_keeps_atoms_residues_and_bonds(ala_traj) -> None:
    """topology -> JSON text -> topology is equal to the original, bond list included."""
    top = ala_traj.topology
    back = topology_from_dict(json.loads(json.dumps(topology_to_dict(top))))
    assert back == top
    assert [(b.atom1.index, b.atom2.index) for b in back.bonds] == [
        (b.atom1.index, b.atom2.index) for b in top.bonds
    ]
    assert back.n_bonds == 21


def test_store_layout_dims_units_and_trajectory_boundaries(tmp_path: Path, ala_traj) -> None:
    """Streamed frames keep order, dims are (frame, atom, xyz), units nm/ps, boundaries recorded."""
    out = tmp_path / "s.zarr"
    with StructureStoreWriter(out, topology=ala_traj.topology, chunk_frames=5) as w:
        w.start_trajectory()
        w.append(ala_traj.xyz[:7], ala_traj.time[:7])
        w.start_trajectory()
        w.append(ala_traj.xyz[7:], ala_traj.time[7:])
        w.attrs["time_step_ps"] = 2.0
        w.commit()
    store = open_structure_store(out)
    assert store.dims == ("frame", "atom", "xyz")
    assert store.attrs["units"] == {"coordinates": "nm", "time": "ps"}
    assert store.trajectory_start.tolist() == [0, 7]
    np.testing.assert_array_equal(store.frames(), ala_traj.xyz)
    assert [len(t) for t in store.trajectories()] == [7, 5]
    assert store.topology == ala_traj.topology


def test_failed_write_leaves_nothing_behind(tmp_path: Path, ala_traj) -> None:
    """An exception while writing leaves neither the store nor a temporary directory."""
    out = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError), StructureStoreWriter(out, topology=ala_traj.topology) as w:
        w.append(ala_traj.xyz)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_an_existing_store(tmp_path: Path, ala_traj) -> None:
    """Writing onto an existing store replaces it whole (no stale frames, no leftovers)."""
    out = tmp_path / "s.zarr"
    write_structure_store(out, coordinates=ala_traj.xyz, topology=ala_traj.topology)
    write_structure_store(out, coordinates=ala_traj.xyz[:3], topology=ala_traj.topology)
    assert open_structure_store(out).coordinates.shape == (3, 22, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]


def test_opening_a_foreign_directory_is_a_user_error(tmp_path: Path) -> None:
    """A directory that is not a structure store gives a one-line UserError."""
    (tmp_path / "x").mkdir()
    with pytest.raises(UserError, match="not a"):
        open_structure_store(tmp_path / "x")
