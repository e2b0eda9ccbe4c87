"""Protein models on a short real MD run: standardisation round trip, lagged pairs within trajectories,
ensemble sampling and trajectory forecasts written as stores that load back in mdtraj."""

from __future__ import annotations

import mdtraj
import numpy as np
import pytest

from models.training import TrainConfig, load_checkpoint
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


def test_condition_noise_trains_on_blurred_conditions_and_is_recorded(md_store, tmp_path) -> None:
    """--condition-noise σ changes what a forecast model learns (other draws equal), is recorded in the
    checkpoint (a forecast's default 0.3, an ensemble's 0), and is refused for an ensemble model, which has no
    conditions."""
    from pydantic import ValidationError

    from pipeline.protein.modeling.train import FORECAST_CONDITION_NOISE

    assert tiny("forecast", md_store).condition_sigma == FORECAST_CONDITION_NOISE == 0.3
    assert tiny("ensemble", md_store).condition_sigma == 0.0
    train_protein(tiny("forecast", md_store, steps=10).model_copy(update={"condition_noise": 0.0}),
                  out=tmp_path / "plain", progress=False)
    train_protein(tiny("forecast", md_store, steps=10), out=tmp_path / "blurred", progress=False)
    plain, blurred = load_checkpoint(tmp_path / "plain"), load_checkpoint(tmp_path / "blurred")
    assert plain.extra["condition_noise"] == 0.0 and blurred.extra["condition_noise"] == 0.3
    assert any(not np.array_equal(plain.model[k].numpy(), blurred.model[k].numpy()) for k in plain.model)
    with pytest.raises(ValidationError, match="an ensemble model has none"):
        ProteinTrainConfig(data=md_store, task="ensemble", condition_noise=0.3)


def test_wrong_model_kind_and_lag_are_clear_errors(md_store, tmp_path) -> None:
    from pipeline.errors import UserError

    train_protein(tiny("ensemble", md_store, steps=2), out=tmp_path / "ens", progress=False)
    with pytest.raises(ValueError, match="ensemble model"):
        forecast_protein(ForecastConfig(model=str(tmp_path / "ens"), start=f"{md_store}:0", steps=1, members=1),
                         out=tmp_path / "x", progress=False)
    bad = tiny("forecast", md_store).model_copy(update={"lag_ps": 0.7})
    with pytest.raises(UserError, match="multiple of the frame spacing"):
        train_protein(bad, out=tmp_path / "bad", progress=False)


def test_internal_coordinates_of_an_unbonded_selection_ask_for_modes(tmp_path, ala_traj) -> None:
    """A Cα-only store has no bond graph: --representation internal says in one line to use modes (or auto)."""
    from pipeline.errors import UserError
    from pipeline.protein.store import write_structure_store

    ca = ala_traj.topology.select("name CA or name CH3")
    path = write_structure_store(tmp_path / "ca.zarr", coordinates=ala_traj.xyz[:, ca],
                                 topology=ala_traj.topology.subset(ca))
    config = tiny("ensemble", str(path)).model_copy(update={"representation": "internal"})
    with pytest.raises(UserError, match="--representation modes"):
        train_protein(config, out=tmp_path / "run", progress=False)


def test_auto_takes_internal_coordinates_for_a_peptide_and_modes_for_a_ca_trace(ala_traj, hinge_traj,
                                                                               make_chain) -> None:
    """auto: a peptide with one bond graph → internal; a Cα trace, or two all-atom chains, → modes."""
    import mdtraj

    from pipeline.protein.modeling.data import resolve_representation

    assert resolve_representation("auto", ala_traj.topology) == "internal"
    two = ala_traj.topology.join(ala_traj.topology)  # two molecules: no single bond graph
    assert isinstance(two, mdtraj.Topology) and resolve_representation("auto", two) == "modes"
    assert resolve_representation("auto", make_chain(n_frames=2, chains=2).topology) == "modes"
    assert resolve_representation("auto", hinge_traj.topology) == "modes"
    assert resolve_representation("cartesian", hinge_traj.topology) == "cartesian"


def test_principal_modes_round_trip_the_training_frames_and_keep_the_chain(hinge_traj) -> None:
    """Encoding then decoding a training frame gives it back (within the projection's 0.005 Å and the frame's
    own distance from the modes' span); a random draw from the prior is decoded with every link at its length."""
    from pipeline.protein.modeling.data import PrincipalModes, featuriser_from_json

    modes = PrincipalModes.fit(hinge_traj.xyz, hinge_traj.topology)
    assert modes.dim <= len(hinge_traj.xyz) - 1
    z = modes.encode(hinge_traj.xyz)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.05)
    back = modes.decode(z)
    from pipeline.protein.geometry import kabsch_align
    aligned = kabsch_align(hinge_traj.xyz, modes.reference)
    assert np.sqrt(np.mean((back - aligned) ** 2)) < 0.005
    prior = modes.decode(np.random.default_rng(0).standard_normal((20, modes.dim)).astype(np.float32))
    assert np.abs(modes.links.errors(prior)[:, modes.links.virtual]).max() < 0.01  # 0.1 Å; the chain test allows 0.3
    again = featuriser_from_json(modes.to_json())
    np.testing.assert_allclose(again.decode(z[:3]), back[:3], atol=1e-5)


def test_a_ca_trace_trains_samples_and_evaluates_end_to_end(tmp_path, hinge_traj) -> None:
    """auto → modes on a 40-residue Cα trace: the samples keep the chain, and evaluate reports the fold (no φ/ψ)."""
    from pipeline.protein.modeling.evaluate import EvaluateConfig, evaluate_protein
    from pipeline.protein.modeling.generate import SampleConfig, sample_protein
    from pipeline.protein.store import write_structure_store

    path = write_structure_store(tmp_path / "ca.zarr", coordinates=hinge_traj.xyz, topology=hinge_traj.topology)
    train_protein(tiny("ensemble", str(path), steps=60), out=tmp_path / "run", progress=False)
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.extra["representation"] == "modes" and 0.05 <= ckpt.extra["smoothing"] <= 0.5
    sample_protein(SampleConfig(model=str(tmp_path / "run"), n=50, formats=[]), out=tmp_path / "s", progress=False)
    metrics = evaluate_protein(EvaluateConfig(samples=str(tmp_path / "s" / "samples.zarr"), reference=str(path),
                                              training=str(path)), out=tmp_path / "report", progress=False)
    assert metrics.get("rama_js") is None and metrics["fold"]["against"] == "training"
    assert metrics["fold"]["chain_valid_fraction"] == 1.0
    assert (tmp_path / "report" / "fold.png").exists()


def test_condition_balance_finds_a_rare_long_lived_state_by_tica_and_leaves_small_sets_uniform() -> None:
    """A state 0.75 % of frames visit (long-lived, along one feature of small variance, among nine noisy features of
    large variance) gets about 1/64 of the draws or more once pairs are balanced over TICA clusters, against 1 %
    uniformly (0.75 %); fewer pairs than 1,280 stay uniform."""
    from pipeline.protein.modeling.train import balanced_probabilities

    rng = np.random.default_rng(0)
    n = 20_000
    rare = np.zeros(n, bool)
    for start in (3000, 9000, 15000):
        rare[start:start + 50] = True
    z = rng.normal(0, 3.0, (n, 10))
    z[:, 0] = np.where(rare, 1.0, 0.0) + rng.normal(0, 0.1, n)
    first = np.arange(n - 10)
    p = balanced_probabilities(z, [(0, n)], first, lag=10, balance=1.0)
    assert p is not None and abs(p.sum() - 1) < 1e-9
    assert p[rare[first]].sum() > 1.0 / 64 > 2 * rare.mean()
    assert balanced_probabilities(z[:1000], [(0, 1000)], np.arange(990), lag=10, balance=1.0) is None
    assert balanced_probabilities(z, [(0, n)], first, lag=10, balance=0.0) is None
