"""Protein models on a short real MD run: standardisation round trip, lagged pairs within trajectories,
ensemble sampling and trajectory forecasts written as stores that load back in mdtraj."""

from __future__ import annotations

import mdtraj
import numpy as np
import pytest

from models.training import TrainConfig
from pipeline.protein.modeling.data import Standardiser, lagged_pairs
from pipeline.protein.modeling.generate import ForecastConfig, SampleConfig, forecast_protein, sample_protein
from pipeline.protein.modeling.model import ProteinNetworkConfig
from pipeline.protein.modeling.train import ProteinTrainConfig, train_protein
from pipeline.protein.simulate import PeptideSimulation, simulate_peptide
from pipeline.protein.store import open_structure_store


@pytest.fixture(scope="module")
def md_store(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("md") / "ala.zarr"
    params = PeptideSimulation(ns=0.02, seed=1, replicas=2, save_every_ps=0.5, equilibrate_ps=1.0)
    return str(simulate_peptide(params=params, out=out, processes=1, use_cache=False, progress=False))


def tiny(task: str, data: str, steps: int = 30) -> ProteinTrainConfig:
    return ProteinTrainConfig(
        data=data, task=task, lag_ps=1.0, network=ProteinNetworkConfig(hidden=32, depth=1, time_dim=16),
        train=TrainConfig(steps=steps, batch_size=16, lr=1e-3, warmup_steps=2, log_every=10, checkpoint_every=30),
    )


def test_standardiser_round_trips_and_removes_rigid_motion() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 3))
    frames = []
    for _ in range(20):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        q *= np.sign(np.linalg.det(q))
        frames.append((base + 0.01 * rng.normal(size=base.shape)) @ q.T + rng.normal(size=3))
    std = Standardiser.fit(np.array(frames))
    z = std.encode(np.array(frames))
    assert z.shape == (20, 18)
    aligned = std.decode(z)
    np.testing.assert_allclose(std.encode(aligned), z, atol=1e-4)
    # After alignment only the 0.01 noise is left: rigid motions (rotations up to 2π, shifts of ~1) are gone.
    assert aligned.std(axis=0).max() < 0.03


def test_lagged_pairs_never_cross_trajectories() -> None:
    first, second = lagged_pairs([(0, 5), (5, 8)], 2)
    assert list(zip(first, second)) == [(0, 2), (1, 3), (2, 4), (5, 7)]
    with pytest.raises(ValueError, match="longer than the lag"):
        lagged_pairs([(0, 2)], 2)


def test_ensemble_model_samples_export(md_store, tmp_path) -> None:
    train_protein(tiny("ensemble", md_store), out=tmp_path / "run", progress=False)
    store_path = sample_protein(SampleConfig(model=str(tmp_path / "run"), n=50, sampler="euler", steps=4),
                                out=tmp_path / "samples", progress=False)
    store = open_structure_store(store_path)
    assert store.dims == ("sample", "frame", "atom", "xyz") and store.coordinates.shape == (50, 1, 22, 3)
    assert store.attrs["samples_per_cpu_second"] > 0
    traj = mdtraj.load(str(tmp_path / "samples" / "exports" / "structures.xtc"),
                       top=str(tmp_path / "samples" / "exports" / "topology.pdb"))
    assert traj.n_frames == 50 and traj.n_atoms == 22
    np.testing.assert_allclose(traj.xyz, store.frames(), atol=2e-3)  # XTC precision


def test_forecast_model_rolls_out_trajectories(md_store, tmp_path) -> None:
    train_protein(tiny("forecast", md_store), out=tmp_path / "run", progress=False)
    store_path = forecast_protein(ForecastConfig(model=str(tmp_path / "run"), start=f"{md_store}:3", steps=5,
                                                 members=2, sampler="euler", sampler_steps=3),
                                  out=tmp_path / "traj", progress=False)
    store = open_structure_store(store_path)
    assert store.coordinates.shape == (2, 6, 22, 3) and store.time_step_ps == 1.0
    dcd = mdtraj.load(str(tmp_path / "traj" / "exports" / "member_001.dcd"),
                      top=str(tmp_path / "traj" / "exports" / "topology.pdb"))
    assert dcd.n_frames == 6


def test_wrong_model_kind_and_lag_are_clear_errors(md_store, tmp_path) -> None:
    from pipeline.errors import UserError

    train_protein(tiny("ensemble", md_store, steps=2), out=tmp_path / "ens", progress=False)
    with pytest.raises(ValueError, match="ensemble model"):
        forecast_protein(ForecastConfig(model=str(tmp_path / "ens"), start=f"{md_store}:0", steps=1, members=1),
                         out=tmp_path / "x", progress=False)
    bad = tiny("forecast", md_store).model_copy(update={"lag_ps": 0.7})
    with pytest.raises(UserError, match="multiple of the frame spacing"):
        train_protein(bad, out=tmp_path / "bad", progress=False)


def test_internal_coordinates_of_an_unbonded_selection_ask_for_cartesian(tmp_path, ala_traj) -> None:
    """A Cα-only store has no bonds: training says in one line to use --representation cartesian."""
    from pipeline.errors import UserError
    from pipeline.protein.store import write_structure_store

    ca = ala_traj.topology.select("name CA or name CH3")
    path = write_structure_store(tmp_path / "ca.zarr", coordinates=ala_traj.xyz[:, ca],
                                 topology=ala_traj.topology.subset(ca))
    with pytest.raises(UserError, match="--representation cartesian"):
        train_protein(tiny("ensemble", str(path)), out=tmp_path / "run", progress=False)
