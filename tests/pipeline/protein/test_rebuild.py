"""All-atom rebuild of backbone structures (PDBFixer) and `velocast export protein`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.protein.rebuild import check_rebuildable, rebuild_all_atom
from pipeline.protein.store import open_structure_store, write_structure_store

pytest.importorskip("pdbfixer")


@pytest.fixture(scope="module")
def adk_segment():
    """Residues 0–11 of adenylate kinase, real MD: (all heavy atoms, 98 frames; backbone only, frames 0 and 97)."""
    mdtraj = pytest.importorskip("mdtraj")
    datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
    traj = mdtraj.load(datafiles.DCD, top=datafiles.PSF)
    heavy = traj.atom_slice(traj.topology.select("not element H and resid 0 to 11"))
    backbone = traj.atom_slice(traj.topology.select("backbone and resid 0 to 11"))[[0, 97]]
    return heavy, backbone


def test_rebuild_keeps_the_backbone_and_restores_every_heavy_atom_with_valid_bonds(adk_segment) -> None:
    """Each rebuilt structure has the MD's heavy atoms (plus the C-terminal OXT), every bond within 0.01 nm of the
    MD's mean length of that bond, the sampled backbone unmoved, and passes the clash test the MD frames pass."""
    import mdtraj

    from pipeline.protein.metrics import bond_pairs, clash_free

    heavy, backbone = adk_segment
    xyz, topology, seconds = rebuild_all_atom(backbone.xyz, backbone.topology)
    assert xyz.shape == (2, heavy.n_atoms + 1, 3) and seconds > 0
    rebuilt = mdtraj.Trajectory(xyz.astype(np.float32), topology)
    names = [(a.residue.index, a.name) for a in topology.atoms]
    assert sorted(n for n in names if n[1] != "OXT") == sorted((a.residue.index, a.name) for a in heavy.topology.atoms)
    kept = [names.index((a.residue.index, a.name)) for a in backbone.topology.atoms]
    np.testing.assert_allclose(rebuilt.xyz[:, kept], backbone.xyz, atol=1e-4)
    pairs = bond_pairs(topology)
    lengths = np.linalg.norm(xyz[:, pairs[:, 0]] - xyz[:, pairs[:, 1]], axis=-1)
    md_index = {(a.residue.index, a.name): a.index for a in heavy.topology.atoms}
    named = [(i, j) for i, j in pairs if names[i] in md_index and names[j] in md_index]
    md_mean = np.array([np.linalg.norm(heavy.xyz[:, md_index[names[i]]] - heavy.xyz[:, md_index[names[j]]],
                                       axis=-1).mean() for i, j in named])
    ours = np.array([np.linalg.norm(xyz[:, i] - xyz[:, j], axis=-1) for i, j in named]).T
    assert len(named) >= len(pairs) - 1 and np.abs(ours - md_mean).max() < 0.01
    assert clash_free(heavy.xyz, heavy.topology).all()
    assert clash_free(xyz, topology).all()
    assert lengths.min() > 0.1
    with_h, h_topology, _ = rebuild_all_atom(backbone.xyz[:1], backbone.topology, hydrogens=True)
    assert h_topology.n_atoms > 1.8 * topology.n_atoms
    assert len(h_topology.select("not element H")) == topology.n_atoms and clash_free(with_h, h_topology).all()


def test_rebuild_of_two_chains_keeps_the_chain_break_and_caps_each_chain() -> None:
    """Two chains (HIV-1 protease dimer 1HVR, crystal; residues 1–6 of each): every heavy atom of the crystal is
    placed, each chain gets its own C-terminal OXT, no bond crosses the chain break, bonds are chemical lengths,
    the backbone stays where it was, and the result is clash-free."""
    mdtraj = pytest.importorskip("mdtraj")
    tests_data = pytest.importorskip("MDAnalysisTests")

    from pipeline.protein.metrics import bond_pairs, clash_free

    crystal = mdtraj.load(str(Path(tests_data.__file__).parent / "data" / "1hvr.pdb"))
    crystal = crystal.atom_slice(crystal.topology.select("protein"))
    picked = "((chainid 0 and resid 0 to 5) or (chainid 1 and resid 99 to 104))"
    backbone = crystal.atom_slice(crystal.topology.select(f"backbone and {picked}"))
    heavy = crystal.atom_slice(crystal.topology.select(f"not element H and {picked}"))
    xyz, topology, _ = rebuild_all_atom(backbone.xyz, backbone.topology)
    atoms = list(topology.atoms)
    assert topology.n_chains == 2
    assert [a.residue.chain.index for a in atoms if a.name == "OXT"] == [0, 1]
    names = [(a.residue.chain.index, a.residue.resSeq, a.name) for a in atoms]
    assert sorted(n for n in names if n[2] != "OXT") == sorted(
        (a.residue.chain.index, a.residue.resSeq, a.name) for a in heavy.topology.atoms)
    pairs = bond_pairs(topology)
    assert not [(i, j) for i, j in pairs if atoms[i].residue.chain.index != atoms[j].residue.chain.index]
    lengths = np.linalg.norm(xyz[:, pairs[:, 0]] - xyz[:, pairs[:, 1]], axis=-1)
    assert 0.11 < lengths.min() and lengths.max() < 0.16
    kept = [names.index((a.residue.chain.index, a.residue.resSeq, a.name)) for a in backbone.topology.atoms]
    np.testing.assert_allclose(xyz[:, kept], backbone.xyz, atol=1e-4)
    assert clash_free(xyz, topology).all()


def test_a_ca_trace_is_refused_with_what_to_do() -> None:
    """A Cα trace fixes no side-chain orientation: one UserError naming --select backbone."""
    mdtraj = pytest.importorskip("mdtraj")
    datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
    top = mdtraj.load_topology(datafiles.PSF)
    ca = top.subset(top.select("name CA"))
    with pytest.raises(UserError, match="--select backbone"):
        check_rebuildable(ca)


def _velocast(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, timeout=300)


def test_cli_export_all_atom_writes_a_store_and_files_and_refuses_a_ca_store(tmp_path: Path, adk_segment) -> None:
    """`velocast export protein S OUT --all-atom --n 2`: structures.zarr (all heavy atoms) + PDB/XTC; a Cα store
    exits 2 with one line and writes nothing; an existing OUT needs --overwrite."""
    import mdtraj

    heavy, backbone = adk_segment
    store = write_structure_store(tmp_path / "bb.zarr", coordinates=backbone.xyz[:, None], topology=backbone.topology,
                                  dims=("sample", "frame", "atom", "xyz"))
    out = tmp_path / "allatom"
    done = _velocast("export", "protein", str(store), str(out), "--all-atom", "--n", "2", "--formats", "pdb,xtc",
                     "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "rebuilt all-atom with PDBFixer" in done.stdout
    rebuilt = open_structure_store(out / "structures.zarr")
    assert rebuilt.n_structures == 2 and rebuilt.n_atoms == heavy.n_atoms + 1
    assert rebuilt.attrs["rebuild"]["tool"] == "pdbfixer"
    back = mdtraj.load(str(out / "exports" / "structures.xtc"), top=str(out / "exports" / "topology.pdb"))
    assert back.n_frames == 2 and back.n_atoms == heavy.n_atoms + 1
    again = _velocast("export", "protein", str(store), str(out), "--no-progress")
    assert again.returncode == 2 and "--overwrite" in again.stderr

    ca = backbone.atom_slice(backbone.topology.select("name CA"))
    ca_store = write_structure_store(tmp_path / "ca.zarr", coordinates=ca.xyz, topology=ca.topology)
    refused = _velocast("export", "protein", str(ca_store), str(tmp_path / "ca-out"), "--all-atom", "--no-progress")
    assert refused.returncode == 2, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "--select backbone" in refused.stderr
    assert not (tmp_path / "ca-out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ca-out")]
