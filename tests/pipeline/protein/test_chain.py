"""The chain's links and the projection that restores them (pipeline.protein.chain)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.protein.chain import ChainLinks, edge_colouring, project_links
from pipeline.protein.graph import virtual_ca_links


def test_a_ca_trace_is_linked_residue_to_residue_within_each_chain_only(hinge_traj, make_chain) -> None:
    """40 Cα of one chain: 39 virtual links; two chains: 2 × 39, none across the chains."""
    assert len(virtual_ca_links(hinge_traj.topology)) == 39
    two = make_chain(n_frames=5, chains=2)
    links = ChainLinks.fit(two.topology, two.xyz)
    assert int(links.virtual.sum()) == 78
    chain_of = np.array([a.residue.chain.index for a in two.topology.atoms])
    assert np.all(chain_of[links.pairs[:, 0]] == chain_of[links.pairs[:, 1]])


def test_a_chain_break_is_not_a_link(hinge_traj) -> None:
    """Consecutive residues 1.2 nm apart in every frame (a missing segment) get no virtual link."""
    xyz = hinge_traj.xyz.copy()
    xyz[:, 20:] += np.array([1.2, 0.0, 0.0], dtype=np.float32)
    links = ChainLinks.fit(hinge_traj.topology, xyz)
    assert int(links.virtual.sum()) == 38
    assert not any({19, 20} == set(p) for p in links.pairs.tolist())


def test_the_bonds_of_an_all_atom_topology_are_links_and_so_are_its_rigid_angles(ala_traj) -> None:
    """Alanine dipeptide (21 bonds): every bond is a link, plus 1–3 pairs (bond angles) that barely move."""
    links = ChainLinks.fit(ala_traj.topology, ala_traj.xyz)
    bonds = {tuple(sorted((b.atom1.index, b.atom2.index))) for b in ala_traj.topology.bonds}
    assert bonds <= {tuple(p) for p in links.pairs.tolist()}
    assert len(links.pairs) > len(bonds)
    assert not links.virtual.any()


def test_edge_colouring_never_gives_one_atom_two_links_of_a_class(ala_traj) -> None:
    links = ChainLinks.fit(ala_traj.topology, ala_traj.xyz)
    for members in edge_colouring(links.pairs):
        atoms = links.pairs[members].ravel()
        assert len(atoms) == len(set(atoms.tolist()))


def test_projection_restores_every_link_and_keeps_the_centroid(hinge_traj) -> None:
    """Structures with 0.5 Å noise on every atom come back with every link within 0.005 Å, centroids unmoved,
    and (being almost right) moved by less than the noise."""
    links = ChainLinks.fit(hinge_traj.topology, hinge_traj.xyz, rigid_std_nm=0.0)
    rng = np.random.default_rng(1)
    noisy = hinge_traj.xyz[:10] + rng.normal(0, 0.05, hinge_traj.xyz[:10].shape).astype(np.float32)
    fixed = project_links(noisy, links)
    assert np.abs(links.errors(fixed)).max() <= 5e-4 + 1e-6
    np.testing.assert_allclose(fixed.mean(axis=1), noisy.mean(axis=1), atol=1e-5)
    assert np.sqrt(np.mean((fixed - noisy) ** 2)) < 0.05


def test_links_survive_json(hinge_traj) -> None:
    links = ChainLinks.fit(hinge_traj.topology, hinge_traj.xyz)
    again = ChainLinks.from_json(links.to_json())
    np.testing.assert_array_equal(again.pairs, links.pairs)
    np.testing.assert_allclose(again.lengths, links.lengths, atol=1e-7)
    np.testing.assert_array_equal(again.virtual, links.virtual)


def test_rigid_pairs_of_a_helix_are_held_near_their_means(hinge_traj) -> None:
    """The ideal helices' i, i+2 and i, i+3 Cα pairs barely move: they become links, and noisy structures come back
    with them within 0.1 Å of their means (a compromise between not quite consistent means)."""
    links = ChainLinks.fit(hinge_traj.topology, hinge_traj.xyz)
    assert (~links.virtual).sum() > 30
    rng = np.random.default_rng(2)
    noisy = hinge_traj.xyz[:5] + rng.normal(0, 0.03, hinge_traj.xyz[:5].shape).astype(np.float32)
    assert np.abs(links.errors(project_links(noisy, links))).max() < 0.01


@pytest.mark.parametrize("tolerance", [1e-3, 1e-4])
def test_projection_meets_the_tolerance_asked(hinge_traj, tolerance: float) -> None:
    links = ChainLinks.fit(hinge_traj.topology, hinge_traj.xyz, rigid_std_nm=0.0)
    noisy = hinge_traj.xyz[:3] * 1.05
    assert np.abs(links.errors(project_links(noisy, links, tolerance_nm=tolerance, max_iterations=500))).max() \
        <= tolerance + 1e-6
