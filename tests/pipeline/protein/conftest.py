"""Fixtures for the protein tests: a small alanine-dipeptide trajectory and an isolated cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test simulates into a private cache (never the user's ~/.cache/velocast)."""
    monkeypatch.setenv("VELOCAST_CACHE", str(tmp_path_factory.getbasetemp() / "velocast-cache"))


@pytest.fixture(scope="session")
def ala_pdb() -> Path:
    """openmmtools' bundled alanine-dipeptide PDB (22 atoms, 21 bonds)."""
    from pipeline.protein.simulate import amber_files

    return amber_files()[0].with_suffix(".pdb")


@pytest.fixture(scope="session")
def ala_traj(ala_pdb: Path):
    """A 12-frame mdtraj Trajectory of alanine dipeptide: the PDB plus 0.01 nm random displacements."""
    import mdtraj

    base = mdtraj.load(str(ala_pdb))
    rng = np.random.default_rng(0)
    xyz = base.xyz + rng.normal(scale=0.01, size=(12, base.n_atoms, 3)).astype(np.float32)
    return mdtraj.Trajectory(xyz, base.topology, time=np.arange(12) * 2.0)


def hinged_chain(n_frames: int = 60, n_residues: int = 40, *, seed: int = 0, chains: int = 1):
    """An mdtraj Trajectory of a Cα trace (``chains`` chains of ``n_residues``): two ideal α-helices (3.8 Å
    Cα–Cα, 1.5 Å rise, 100° per residue) joined by a hinge that opens over the frames (a domain motion), plus
    0.05 Å thermal noise per coordinate. Consecutive Cα–Cα stay within ~0.2 Å of 3.8 Å."""
    import mdtraj

    rng = np.random.default_rng(seed)
    k = np.arange(n_residues // 2)
    helix = np.stack([0.23 * np.cos(np.radians(100) * k), 0.23 * np.sin(np.radians(100) * k), 0.15 * k], axis=1)
    frames = []
    for angle in np.linspace(0.3, 1.4, n_frames) + rng.normal(0, 0.05, n_frames):
        c, s = np.cos(angle), np.sin(angle)
        second = helix @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]]).T
        second = second - second[0] + helix[-1] + np.array([0.0, 0.38 * np.sin(angle / 2), 0.38 * np.cos(angle / 2)])
        one = np.concatenate([helix, second])
        frames.append(np.concatenate([one + np.array([2.0 * m, 0, 0]) for m in range(chains)]))
    xyz = np.asarray(frames) + rng.normal(0, 0.005, (n_frames, chains * n_residues, 3))
    top = mdtraj.Topology()
    for _ in range(chains):
        chain = top.add_chain()
        for r in range(n_residues):
            top.add_atom("CA", mdtraj.element.carbon, top.add_residue("ALA", chain, resSeq=r + 1))
    return mdtraj.Trajectory(xyz.astype(np.float32), top)


@pytest.fixture(scope="session")
def hinge_traj():
    """:func:`hinged_chain` with its defaults: 60 frames of a 40-residue Cα trace."""
    return hinged_chain()


@pytest.fixture(scope="session")
def make_chain():
    """:func:`hinged_chain` itself, for tests that need other sizes or several chains."""
    return hinged_chain
