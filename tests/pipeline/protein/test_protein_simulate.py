"""The embedded alanine-dipeptide simulation: determinism, caching, recorded cost and force field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.protein.simulate import (
    PeptideSimulation,
    builtin_source_string,
    parse_builtin,
    simulate_peptide,
)
from pipeline.protein.store import open_structure_store

TINY = dict(ns=0.002, equilibrate_ps=0.0, save_every_ps=0.2)  # 2 ps, 10 frames


def test_same_seed_gives_identical_frames_and_other_seed_differs(tmp_path: Path) -> None:
    """Two uncached 2 ps runs with one seed are bit-identical; another seed gives other frames."""
    a = open_structure_store(
        simulate_peptide(
            params=PeptideSimulation(seed=7, **TINY), out=tmp_path / "a.zarr", use_cache=False, progress=False
        )
    ).frames()
    b = open_structure_store(
        simulate_peptide(
            params=PeptideSimulation(seed=7, **TINY), out=tmp_path / "b.zarr", use_cache=False, progress=False
        )
    ).frames()
    c = open_structure_store(
        simulate_peptide(
            params=PeptideSimulation(seed=8, **TINY), out=tmp_path / "c.zarr", use_cache=False, progress=False
        )
    ).frames()
    assert a.shape == (10, 22, 3)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_second_call_reuses_the_cache(tmp_path: Path) -> None:
    """The same parameters return the cached store (same creation record) instead of re-simulating."""
    params = PeptideSimulation(seed=11, **TINY)
    first = simulate_peptide(params=params, progress=False)
    created = open_structure_store(first).attrs["provenance"]["created"]
    marker = first / "zarr.json"
    mtime = marker.stat().st_mtime_ns
    second = simulate_peptide(params=params, out=tmp_path / "copy.zarr", progress=False)
    assert simulate_peptide(params=params, progress=False) == first
    assert marker.stat().st_mtime_ns == mtime
    assert open_structure_store(second).attrs["provenance"]["created"] == created
    np.testing.assert_array_equal(open_structure_store(second).frames(), open_structure_store(first).frames())


def test_store_records_cost_force_field_lengths_and_recipe() -> None:
    """The store holds md_cpu_seconds, ff bond lengths for all 21 bonds, time step and the recipe."""
    store = open_structure_store(
        simulate_peptide(params=PeptideSimulation(seed=1, vacuum=True, **TINY), progress=False)
    )
    assert store.attrs["md_cpu_seconds"] > 0
    assert len(store.attrs["bond_lengths_nm"]) == 21
    lengths = {(i, j): r for i, j, r in store.attrs["bond_lengths_nm"]}
    assert lengths[(0, 1)] == pytest.approx(0.109)  # ACE H1-CH3, amber HC-CT
    assert store.time_step_ps == pytest.approx(0.2)
    recipe = store.attrs["provenance"]["recipe"]
    assert recipe["solvent"] == "vacuum" and recipe["constraints"] == "HBonds"
    assert store.attrs["sources"][0].startswith("builtin:alanine-dipeptide?")
    # bonded geometry stays near the force field's lengths
    x = store.frames()
    d = np.array([[np.linalg.norm(f[i] - f[j]) - r for (i, j), r in lengths.items()] for f in x])
    assert np.abs(d).max() < 0.02


def test_replicas_run_in_parallel_processes_and_are_independent(tmp_path: Path) -> None:
    """Two replicas in two processes: two trajectories, different frames, seeds recorded."""
    params = PeptideSimulation(seed=2, replicas=2, ns=0.001, equilibrate_ps=0.0, save_every_ps=0.2)
    store = open_structure_store(simulate_peptide(params=params, processes=2, progress=False))
    assert store.trajectory_start.tolist() == [0, 5]
    t0, t1 = store.trajectories()
    assert np.abs(t0 - t1).max() > 1e-3
    assert len(set(store.attrs["provenance"]["replica_seeds"])) == 2


def test_more_replicas_reuse_the_replicas_already_simulated() -> None:
    """Asking for 2 replicas after 1 simulates only replica 1; replica 0's frames and cost are reused."""
    one = open_structure_store(
        simulate_peptide(params=PeptideSimulation(seed=5, replicas=1, **TINY), progress=False)
    )
    two = open_structure_store(
        simulate_peptide(params=PeptideSimulation(seed=5, replicas=2, **TINY), processes=1, progress=False)
    )
    assert two.attrs["provenance"]["replicas_from_cache"] == 1
    np.testing.assert_array_equal(two.trajectories()[0], one.frames())
    assert np.abs(two.trajectories()[1] - one.frames()).max() > 1e-3
    assert two.attrs["md_cpu_seconds"] > one.attrs["md_cpu_seconds"]


def test_builtin_source_string_round_trips() -> None:
    """builtin:alanine-dipeptide?… names the parameters and parses back to them; unknown keys are errors."""
    params = PeptideSimulation(ns=5.0, seed=3, vacuum=True, replicas=2)
    assert parse_builtin(builtin_source_string(params)) == params
    assert parse_builtin("builtin:alanine-dipeptide?ns=5&seed=0") == PeptideSimulation(ns=5.0, seed=0)
    with pytest.raises(UserError, match="unknown parameter"):
        parse_builtin("builtin:alanine-dipeptide?nanoseconds=5")
    with pytest.raises(UserError, match="unknown builtin"):
        parse_builtin("builtin:ubiquitin")
