"""Internal coordinates: the Z-matrix of alanine dipeptide, exact NeRF round trips, invariance to rigid
motions, and the featuriser's dihedral cuts and standardisation."""

from __future__ import annotations

import mdtraj
import numpy as np
import pytest

from pipeline.protein.geometry import kabsch_align, phi_psi
from pipeline.protein.modeling.data import InternalCoordinates, dihedral_cuts, featuriser_from_json
from pipeline.protein.zmatrix import ZMatrix


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_zmatrix_places_every_atom_from_bonded_earlier_atoms(ala_traj) -> None:
    """Each atom's bond atom is bonded to it, its angle atom is bonded to the bond atom, and every
    reference is placed before the atom itself; the backbone φ appears as a proper torsion."""
    top = ala_traj.topology
    z = ZMatrix.from_topology(top)
    bonded = {frozenset((b.atom1.index, b.atom2.index)) for b in top.bonds}
    rank = {int(a): k for k, a in enumerate(z.order)}
    assert sorted(z.order) == list(range(top.n_atoms)) and z.n_features == 3 * 22 - 6
    for k in range(1, top.n_atoms):
        atom, b = int(z.order[k]), int(z.bond[k])
        assert frozenset((atom, b)) in bonded and rank[b] < k
        if k >= 2:
            assert frozenset((b, int(z.angle[k]))) in bonded and rank[int(z.angle[k])] < k
        if k >= 3:
            assert rank[int(z.torsion[k])] < k
    names = [a.name for a in top.atoms]
    assert names[int(z.order[0])] == "CA"  # the centre of the heavy-atom chain


def test_nerf_rebuilds_the_structure_exactly_up_to_a_rigid_motion(ala_traj) -> None:
    """internal → cartesian → internal is the identity; the rebuilt frames superpose with zero RMSD."""
    z = ZMatrix.from_topology(ala_traj.topology)
    x = ala_traj.xyz.astype(np.float64)
    bonds, angles, dihedrals = z.internal(x)
    y = z.cartesian(bonds, angles, dihedrals)
    for frame, rebuilt in zip(x, y):
        np.testing.assert_allclose(kabsch_align(rebuilt[None], frame)[0], frame, atol=1e-9)
    again = z.internal(y)
    np.testing.assert_allclose(again[0], bonds, atol=1e-12)
    np.testing.assert_allclose(again[1], angles, atol=1e-12)
    np.testing.assert_allclose(np.angle(np.exp(1j * (again[2] - dihedrals))), 0.0, atol=1e-9)
    np.testing.assert_allclose(phi_psi(y, ala_traj.topology)[0], phi_psi(x, ala_traj.topology)[0], atol=1e-9)


def test_internal_coordinates_ignore_rotations_and_translations(ala_traj) -> None:
    rng = np.random.default_rng(3)
    z = ZMatrix.from_topology(ala_traj.topology)
    x = ala_traj.xyz.astype(np.float64)
    moved = x @ random_rotation(rng).T + rng.normal(size=3)
    for a, b in zip(z.internal(x), z.internal(moved)):
        np.testing.assert_allclose(np.cos(a), np.cos(b), atol=1e-9)
        np.testing.assert_allclose(np.sin(a), np.sin(b), atol=1e-9)


def test_a_disconnected_topology_is_refused() -> None:
    with pytest.raises(ValueError, match="not one connected molecule"):
        ZMatrix.from_bonds(5, [(0, 1), (1, 2), (3, 4)])


def test_dihedral_cuts_fall_in_the_empty_stretch_of_the_circle() -> None:
    """Two basins at −115° and +60° (φ-like) and one at 180°: each cut lies outside every basin, so no
    basin is split by the ±π seam of the unwrapped coordinate."""
    rng = np.random.default_rng(0)
    phi = np.concatenate([rng.normal(-2.0, 0.3, 4000), rng.normal(1.05, 0.15, 500)])
    flat = np.angle(np.exp(1j * rng.normal(np.pi, 0.05, 4500)))
    cuts = np.degrees(dihedral_cuts(np.angle(np.exp(1j * np.stack([phi, flat], axis=1)))))

    def apart(a: float, b: float) -> float:
        return abs((a - b + 180) % 360 - 180)

    assert apart(cuts[0], -114.6) > 3 * 17 and apart(cuts[0], 60.2) > 3 * 8.6
    assert apart(cuts[1], 180.0) > 90


def test_internal_featuriser_round_trips_through_json(ala_traj) -> None:
    """encode → decode gives the frames back (superposed on the mean structure), also after JSON."""
    featuriser = InternalCoordinates.fit(ala_traj.xyz, ala_traj.topology)
    z = featuriser.encode(ala_traj.xyz)
    assert z.shape == (12, 60) and np.all(np.isfinite(z))
    restored = featuriser_from_json(featuriser.to_json())
    decoded = restored.decode(z)
    for frame, back in zip(ala_traj.xyz, decoded):
        assert np.sqrt(np.mean(np.sum((kabsch_align(back[None], frame)[0] - frame) ** 2, axis=-1))) < 1e-5
    rebuilt = mdtraj.Trajectory(decoded, ala_traj.topology)
    np.testing.assert_allclose(mdtraj.compute_phi(rebuilt)[1], mdtraj.compute_phi(ala_traj)[1], atol=1e-4)


def test_fixed_bonds_drop_the_bond_features_and_rebuild_at_the_mean_lengths(ala_traj) -> None:
    """With ``bonds="fixed"`` the features are the 2N − 5 angles and dihedrals; decoding (also after JSON) keeps
    every angle and dihedral of the frame and puts every Z-matrix bond at its mean training length."""
    featuriser = InternalCoordinates.fit(ala_traj.xyz, ala_traj.topology, bonds="fixed")
    n = ala_traj.n_atoms
    z = featuriser.encode(ala_traj.xyz)
    assert z.shape == (12, 2 * n - 5) and featuriser.dim == 2 * n - 5
    decoded = featuriser_from_json(featuriser.to_json()).decode(z)
    bonds, angles, dihedrals = featuriser.zmatrix.internal(decoded)
    want_bonds, want_angles, want_dihedrals = featuriser.zmatrix.internal(ala_traj.xyz)
    np.testing.assert_allclose(bonds, np.broadcast_to(want_bonds.mean(axis=0), bonds.shape), atol=1e-6)
    np.testing.assert_allclose(angles, want_angles, atol=1e-5)
    np.testing.assert_allclose(np.cos(dihedrals - want_dihedrals), 1.0, atol=1e-8)


def test_bonds_default_to_fixed_for_internal_and_fixed_cartesian_is_refused() -> None:
    """Internal coordinates hold bonds fixed unless asked; cartesian ones learn positions; asking for fixed
    bonds with cartesian coordinates is a clear error."""
    from pipeline.protein.modeling.data import resolve_bond_model
    from pipeline.protein.modeling.train import ProteinTrainConfig

    assert resolve_bond_model("internal", None) == "fixed" and resolve_bond_model("cartesian", None) == "learned"
    assert resolve_bond_model("internal", "learned") == "learned"
    ProteinTrainConfig(data="x.zarr", representation="cartesian")
    with pytest.raises(ValueError, match="needs representation: internal"):
        ProteinTrainConfig(data="x.zarr", representation="cartesian", bonds="fixed")


@pytest.fixture(scope="module")
def adk_heavy():
    """Heavy atoms of adenylate kinase residues 1–30 (real CHARMM MD, 98 frames): two prolines, a Phe and a Tyr."""
    datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
    traj = mdtraj.load(datafiles.DCD, top=datafiles.PSF)
    return traj.atom_slice(traj.topology.select("not element H and resid 0 to 29"))


def test_decoding_closes_every_ring_even_from_noisy_features(adk_heavy) -> None:
    """The Z-matrix tree leaves one bond of each proline and aromatic ring open; decoding closes them. From the
    training frames' features plus noise of 1 (in feature units; fixed bonds), every bond is within 0.1 Å of its
    training mean in every frame, while without the closure the open bonds are off by up to ~1 Å. The closure
    moves only ring atoms and their neighbours, and survives JSON."""
    import dataclasses

    from pipeline.protein.graph import bond_pairs

    featuriser = InternalCoordinates.fit(adk_heavy.xyz, adk_heavy.topology, bonds="fixed")
    assert featuriser.rings is not None and featuriser.rings.closing.sum() >= 4
    pairs = bond_pairs(adk_heavy.topology)

    def bond_error(x: np.ndarray) -> np.ndarray:
        mean = np.linalg.norm(adk_heavy.xyz[:, pairs[:, 0]] - adk_heavy.xyz[:, pairs[:, 1]], axis=-1).mean(0)
        return np.abs(np.linalg.norm(x[:, pairs[:, 0]] - x[:, pairs[:, 1]], axis=-1) - mean)

    z = featuriser.encode(adk_heavy.xyz) + np.random.default_rng(0).standard_normal((98, featuriser.dim))
    closed = featuriser_from_json(featuriser.to_json()).decode(z)
    open_ = dataclasses.replace(featuriser, rings=None).decode(z)
    assert bond_error(open_).max() > 0.05 and (bond_error(open_).max(axis=1) < 0.01).mean() < 0.1
    assert bond_error(closed).max() < 0.01
    pinned = np.flatnonzero(~featuriser.rings.movable)
    for frame_closed, frame_open in zip(closed.astype(np.float64), open_.astype(np.float64)):
        aligned = kabsch_align(frame_closed[None], frame_open, atom_indices=pinned)[0]
        assert np.abs(aligned[pinned] - frame_open[pinned]).max() < 1e-4


def test_two_chains_get_internal_coordinates_joined_at_their_contact() -> None:
    """Two chains (HIV-1 protease dimer 1HVR, residues 1–6 of each, 20 jittered copies of the crystal): one
    virtual link at the closest heavy-atom pair joins them, its length is a feature even with fixed bonds, the
    round trip is exact with learned bonds (the rings of Pro1 and Trp6 left to their own test), and no chain is
    ever bonded to the other."""
    import dataclasses

    tests_data = pytest.importorskip("MDAnalysisTests")
    from pathlib import Path

    crystal = mdtraj.load(str(Path(tests_data.__file__).parent / "data" / "1hvr.pdb"))
    crystal = crystal.atom_slice(crystal.topology.select(
        "protein and not element H and ((chainid 0 and resid 0 to 5) or (chainid 1 and resid 99 to 104))"))
    frames = crystal.xyz + 0.01 * np.random.default_rng(1).standard_normal((20, crystal.n_atoms, 3))
    with pytest.raises(ValueError, match="not one connected molecule"):
        ZMatrix.from_topology(crystal.topology)
    learned = InternalCoordinates.fit(frames, crystal.topology, bonds="learned")
    rows = learned.zmatrix.virtual_rows
    assert len(rows) == 1
    i, j = learned.zmatrix.order[rows[0]], learned.zmatrix.bond[rows[0]]
    chain = [a.residue.chain.index for a in crystal.topology.atoms]
    assert chain[i] != chain[j]
    contact = np.linalg.norm(crystal.xyz[0][np.array(chain) == 0][:, None] - crystal.xyz[0][np.array(chain) == 1][None],
                             axis=-1).min()
    assert abs(np.linalg.norm(crystal.xyz[0][i] - crystal.xyz[0][j]) - contact) < 0.005
    decoded = dataclasses.replace(featuriser_from_json(learned.to_json()), rings=None).decode(learned.encode(frames))
    for frame, back in zip(frames, decoded):
        assert np.abs(kabsch_align(back[None].astype(np.float64), frame)[0] - frame).max() < 1e-4
    fixed = InternalCoordinates.fit(frames, crystal.topology, bonds="fixed")
    assert fixed.dim == 2 * crystal.n_atoms - 5 + 1


def test_auto_keeps_internal_coordinates_for_small_rings_and_not_for_disulfide_loops(adk_heavy) -> None:
    """10 residues with a proline ring stay in internal coordinates, 30 go to principal modes (the lever arm);
    a 10-residue stretch of a 28-residue NMR peptide with one of its disulfides, a loop of dozens of atoms (which
    decoding cannot close from a tree), goes to principal modes too."""
    tests_data = pytest.importorskip("MDAnalysisTests")
    from pathlib import Path

    from pipeline.protein.modeling.data import resolve_representation

    nmr = mdtraj.load_topology(str(Path(tests_data.__file__).parent / "data" / "nmr_neopetrosiamide.pdb"))
    loop = nmr.subset(nmr.select("not element H and resid 2 to 11"))  # Cys7–Cys12 (residue numbers 7 and 12)
    assert sum(b.atom1.name == b.atom2.name == "SG" for b in loop.bonds) == 1 and loop.n_residues == 10
    ten = adk_heavy.topology.subset(adk_heavy.topology.select("resid 0 to 9"))
    assert any(r.name == "PRO" for r in ten.residues)
    assert resolve_representation("auto", ten) == "internal"
    assert resolve_representation("auto", adk_heavy.topology) == "modes"
    assert resolve_representation("auto", loop) == "modes"
    assert resolve_representation("internal", loop) == "internal"
