"""Chain and fold metrics of generated structures (pipeline.protein.fold) and the clash test at protein scale."""

from __future__ import annotations

import numpy as np

from pipeline.protein.fold import consecutive_ca, contact_frequencies, fold_metrics, nearest_rmsd
from pipeline.protein.metrics import clash_free


def test_the_md_frames_themselves_pass_every_fold_test(hinge_traj) -> None:
    """Frames against themselves: chain-valid, same Rg, full PC1 coverage, identical contacts."""
    m, _ = fold_metrics(hinge_traj.xyz, hinge_traj.xyz, hinge_traj.topology)
    assert m["chain_valid_fraction"] == m["md_chain_valid_fraction"] == 1.0
    assert abs(m["rg_mean_relative_error"]) < 1e-9 and abs(m["rg_std_relative_error"]) < 1e-6
    assert m["pc1"]["coverage"] == 1.0
    assert m["contacts"]["mean_abs_difference"] == 0.0
    # a copy of a frame is at RMSD 0 from it: the copies' median is below the frames' own nearest neighbour
    assert m["nearest_md_rmsd_angstrom"]["samples_median"] < m["nearest_md_rmsd_angstrom"]["md_own_median"]


def test_a_broken_chain_and_a_collapsed_fold_are_seen(hinge_traj) -> None:
    """Per-atom noise of 1 Å breaks the chain; shrinking every structure by 20 % moves Rg by -20 %; frames of
    one end of the hinge motion cover only part of PC1."""
    rng = np.random.default_rng(0)
    md = hinge_traj.xyz
    broken, _ = fold_metrics(md + rng.normal(0, 0.1, md.shape).astype(np.float32), md, hinge_traj.topology)
    assert broken["chain_valid_fraction"] == 0.0
    shrunk, _ = fold_metrics(md * 0.8, md, hinge_traj.topology)
    assert abs(shrunk["rg_mean_relative_error"] + 0.2) < 1e-3
    half, _ = fold_metrics(md[:20], md, hinge_traj.topology)
    assert half["pc1"]["coverage"] < 0.5


def test_nearest_rmsd_leaves_the_frame_itself_out(hinge_traj) -> None:
    x = hinge_traj.xyz[:10]
    assert np.all(nearest_rmsd(x, x) < 1e-3)
    own = nearest_rmsd(x, x, leave_self_out=True)
    assert np.all(own > 1e-3)


def test_chain_pairs_and_contacts_respect_chains_and_sequence_separation(make_chain) -> None:
    two = make_chain(n_frames=4, chains=2)
    assert len(consecutive_ca(two.topology)) == 78
    freq = contact_frequencies(two.xyz)
    n = two.n_atoms
    assert len(freq) == len(np.triu_indices(n, 3)[0])
    assert np.all((freq >= 0) & (freq <= 1))


def test_clashes_count_overlaps_but_not_hydrogen_bonds(ala_traj) -> None:
    """Heavy atoms pressed to 2.0 Å clash; an N…O pair at 2.7 Å (a hydrogen bond) does not; the frames pass."""
    top = ala_traj.topology
    assert clash_free(ala_traj.xyz, top).all()
    carbons = [a.index for a in top.atoms if (a.name, a.residue.name) in (("CH3", "ACE"), ("C", "NME"))]  # methyls
    n_atom = next(a.index for a in top.atoms if a.name == "N" and a.residue.name == "NME")
    o_atom = next(a.index for a in top.atoms if a.name == "O" and a.residue.name == "ACE")
    x = ala_traj.xyz[:1].copy()
    x[0, carbons[1]] = x[0, carbons[0]] + np.array([0.2, 0, 0])
    assert not clash_free(x, top)[0]
    y = ala_traj.xyz[:1].copy()
    y[0, n_atom] = y[0, o_atom] + np.array([0.27, 0, 0])
    assert clash_free(y, top)[0]


def test_tica_of_the_md_series_sees_samples_that_cover_only_one_end_of_the_slow_motion(hinge_traj) -> None:
    """TIC1 (deeptime) of the hinge trajectory: the frames themselves cover it with JS 0; the first third of the
    opening covers under half of it and its histogram differs (JS > 0.5); no time series, no TIC1."""
    md = hinge_traj.xyz
    same, _ = fold_metrics(md, md, hinge_traj.topology, md_series=[md])
    assert same["tic1"]["coverage"] == 1.0 and same["tic1"]["js_distance"] < 1e-9
    assert same["tic1"]["lag_frames"] == 1
    part, _ = fold_metrics(md[:20], md, hinge_traj.topology, md_series=[md])
    assert part["tic1"]["coverage"] < 0.5 and part["tic1"]["js_distance"] > 0.5
    assert "tic1" not in fold_metrics(md, md, hinge_traj.topology)[0]
