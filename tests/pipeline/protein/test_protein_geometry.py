"""Geometry: Kabsch superposition and dihedral angles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pipeline.protein.geometry import dihedral, kabsch_align, kabsch_rotation, phi_psi, rmsd


def test_rotated_and_translated_copy_aligns_to_zero_rmsd(ala_traj) -> None:
    """A rigidly rotated + shifted copy of a structure superposes back onto it exactly."""
    ref = ala_traj.xyz[0].astype(np.float64)
    rot = Rotation.random(random_state=1).as_matrix()
    moved = ref @ rot.T + np.array([1.0, -2.0, 0.5])
    aligned = kabsch_align(moved[None], ref)[0]
    assert rmsd(aligned, ref) < 1e-10
    assert rmsd(moved, ref) > 0.1


def test_kabsch_rmsd_is_minimal_over_random_rotations(ala_traj) -> None:
    """No random rotation of the aligned frame gets closer to the reference than the Kabsch fit."""
    ref = ala_traj.xyz[0].astype(np.float64)
    aligned = kabsch_align(ala_traj.xyz[1:2].astype(np.float64), ref)[0]
    best = rmsd(aligned, ref)
    centre = aligned.mean(axis=0)
    for k in range(50):
        small = Rotation.from_rotvec(np.random.default_rng(k).normal(scale=0.05, size=3)).as_matrix()
        trial = (aligned - centre) @ small.T + centre
        assert rmsd(trial, ref) >= best - 1e-12


def test_kabsch_rotation_is_proper_even_for_mirror_images(ala_traj) -> None:
    """The rotation has determinant +1 (no reflection) even when a mirror image would fit better."""
    ref = ala_traj.xyz[0].astype(np.float64)
    ref = ref - ref.mean(axis=0)
    mirrored = ref * np.array([-1.0, 1.0, 1.0])
    assert np.linalg.det(kabsch_rotation(mirrored, ref)) == pytest.approx(1.0)


def test_kabsch_matches_mdtraj_superpose_rmsd(ala_traj) -> None:
    """Our aligned RMSD equals mdtraj's (independent implementation) for every frame."""
    import mdtraj

    ours = rmsd(kabsch_align(ala_traj.xyz, ala_traj.xyz[0]), ala_traj.xyz[0])
    theirs = mdtraj.rmsd(ala_traj, ala_traj, 0)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


@pytest.mark.parametrize("angle_deg", [-179.0, -120.0, -60.0, 0.0, 45.0, 90.0, 180.0])
def test_dihedral_of_a_constructed_geometry(angle_deg: float) -> None:
    """Four points built with a known torsion give that torsion back (sign convention: IUPAC)."""
    a = np.radians(angle_deg)
    p1, p2 = np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    p0 = np.array([1.0, 0.0, 0.0])
    p3 = np.array([np.cos(a), np.sin(a), 1.0])
    got = np.degrees(dihedral(p0, p1, p2, p3))
    assert (got - angle_deg + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-9)


def test_phi_psi_match_mdtraj(ala_traj) -> None:
    """(φ, ψ) of alanine dipeptide agree with mdtraj.compute_phi/psi."""
    import mdtraj

    phi, psi = phi_psi(ala_traj.xyz, ala_traj.topology)
    np.testing.assert_allclose(phi[:, 0], mdtraj.compute_phi(ala_traj)[1][:, 0], atol=1e-5)
    np.testing.assert_allclose(psi[:, 0], mdtraj.compute_psi(ala_traj)[1][:, 0], atol=1e-5)
