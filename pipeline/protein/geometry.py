"""Geometry: Kabsch superposition, dihedral angles, backbone (φ, ψ) of a topology.

Kabsch: for centred point sets X (moving) and Y (reference), the rotation R minimising
``Σ‖R x_i − y_i‖²`` is ``R = V diag(1, 1, d) Uᵀ`` where ``H = Xᵀ Y = U S Vᵀ`` and
``d = sign(det(V Uᵀ))`` (no reflections). Centres are unweighted centroids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import mdtraj


def kabsch_rotation(moving: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Optimal rotations (…, 3, 3) taking centred ``moving`` (…, n, 3) onto centred ``reference`` (n, 3).

    Apply as ``moving @ R.swapaxes(-1, -2)`` (row vectors), i.e. ``x ↦ R x``.
    """
    h = np.einsum("...ni,nj->...ij", moving, reference)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.einsum("...ij,...jk->...ik", u, vt)))
    diag = np.ones(h.shape[:-2] + (3,), dtype=h.dtype)
    diag[..., 2] = d
    # R = V diag Uᵀ
    return np.einsum("...ji,...j,...kj->...ik", vt, diag, u)


def kabsch_align(
    coordinates: np.ndarray, reference: np.ndarray, *, atom_indices: np.ndarray | None = None
) -> np.ndarray:
    """Superpose every frame of ``coordinates`` (frame, atom, 3) on ``reference`` (atom, 3).

    The fit uses ``atom_indices`` (all atoms by default); the output is placed at the reference's
    centroid of those atoms. Minimises the RMSD over the fitted atoms.
    """
    x = np.asarray(coordinates, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    idx = np.arange(x.shape[-2]) if atom_indices is None else np.asarray(atom_indices)
    ref_centre = ref[idx].mean(axis=0)
    centre = x[..., idx, :].mean(axis=-2, keepdims=True)
    rot = kabsch_rotation(x[..., idx, :] - centre, ref[idx] - ref_centre)
    aligned = np.einsum("...ni,...ji->...nj", x - centre, rot) + ref_centre
    return aligned.astype(np.asarray(coordinates).dtype, copy=False)


def rmsd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root-mean-square deviation over atoms, without superposition: (…, n, 3) -> (…)."""
    return np.sqrt(np.mean(np.sum((np.asarray(a) - np.asarray(b)) ** 2, axis=-1), axis=-1))


def dihedral(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """Signed dihedral angle in radians, in [-π, π], of points (…, 3) (IUPAC convention).

    With b0 = p0−p1, b1 = p2−p1, b2 = p3−p2: the angle between the projections of b0 and b2 onto the
    plane normal to b1; positive when, looking along b1, the far bond is rotated clockwise.
    """
    b0 = p0 - p1
    b1 = p2 - p1
    b2 = p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, axis=-1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, axis=-1, keepdims=True) * b1n
    x = np.sum(v * w, axis=-1)
    y = np.sum(np.cross(b1n, v) * w, axis=-1)
    return np.arctan2(y, x)


def backbone_dihedral_indices(topology: mdtraj.Topology) -> tuple[np.ndarray, np.ndarray]:
    """Atom quadruplets (k, 4) of every φ (C−N−CA−C) and ψ (N−CA−C−N) in ``topology`` (mdtraj's rules)."""
    import mdtraj

    probe = mdtraj.Trajectory(np.zeros((1, topology.n_atoms, 3), dtype=np.float32), topology)
    phi_idx, _ = mdtraj.compute_phi(probe)
    psi_idx, _ = mdtraj.compute_psi(probe)
    return np.asarray(phi_idx, dtype=np.int64), np.asarray(psi_idx, dtype=np.int64)


def phi_psi(coordinates: np.ndarray, topology: mdtraj.Topology) -> tuple[np.ndarray, np.ndarray]:
    """(φ, ψ) in radians, each (frame, k), of residues that have both (alanine dipeptide: k = 1).

    Pairs φ of residue i with ψ of residue i (the same central CA).
    """
    phi_idx, psi_idx = backbone_dihedral_indices(topology)
    if len(phi_idx) == 0 or len(psi_idx) == 0:
        raise ValueError("topology has no backbone φ/ψ dihedrals")
    psi_by_ca = {int(q[1]): q for q in psi_idx}
    pairs = [(p, psi_by_ca[int(p[2])]) for p in phi_idx if int(p[2]) in psi_by_ca]
    if not pairs:
        raise ValueError("topology has no residue with both φ and ψ")
    phi_q = np.array([p for p, _ in pairs])
    psi_q = np.array([q for _, q in pairs])
    def corners(quads: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(coordinates[:, quads[:, k]], dtype=np.float64) for k in range(4)]

    return dihedral(*corners(phi_q)), dihedral(*corners(psi_q))


def even_subsample(n_items: int, n_keep: int) -> np.ndarray:
    """``n_keep`` evenly spaced indices of ``range(n_items)`` (all of them when n_keep >= n_items)."""
    if n_keep >= n_items:
        return np.arange(n_items)
    return np.floor(np.arange(n_keep) * (n_items / n_keep)).astype(np.int64)


def mean_structure(frames: np.ndarray) -> np.ndarray:
    """The mean of ``frames`` after two Kabsch passes (on the first frame, then on the first mean)."""
    reference = kabsch_align(frames, frames[0]).mean(axis=0)
    return kabsch_align(frames, reference).mean(axis=0).astype(np.float64)
