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
