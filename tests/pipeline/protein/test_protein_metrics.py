"""Evaluation metrics against hand-computed values, and the evaluate CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.protein import metrics as ev
from pipeline.protein.graph import nonlocal_pairs
from pipeline.protein.store import write_structure_store

DEG = np.pi / 180


def test_js_distance_identical_is_zero_disjoint_is_one_and_a_hand_value() -> None:
    """JS distance (log2): 0 for equal histograms, 1 for disjoint ones, sqrt(JSD) for a worked example."""
    p = np.array([0.5, 0.5, 0.0, 0.0])
    assert ev.js_distance(p, p) == 0.0
    assert ev.js_distance(p, np.array([0.0, 0.0, 0.5, 0.5])) == pytest.approx(1.0)
    # P = (1, 0), Q = (1/2, 1/2): M = (3/4, 1/4); JSD = ½·log2(4/3) + ½·(½·log2(2/3) + ½·log2(2))
    jsd = 0.5 * np.log2(4 / 3) + 0.5 * (0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25))
    assert ev.js_distance(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(np.sqrt(jsd))


def test_rama_histogram_bins_are_ten_degrees_and_pi_wraps() -> None:
    """36×36 bins over [-π, π): (-175°, 5°) lands in bin (0, 18); φ = +180° wraps to bin 0."""
    h = ev.rama_histogram(np.array([-175 * DEG, np.pi]), np.array([5 * DEG, 5 * DEG]))
    assert h.shape == (36, 36)
    assert h[0, 18] == pytest.approx(1.0)


def test_basin_populations_of_synthetic_angles() -> None:
    """Points placed in known basins give the hand-counted populations (boundaries half-open)."""
    phi = np.array([-60, -60, -150, -150, 60, 60, -80, 100]) * DEG
    psi = np.array([-45, 49.5, 150, -160, 45, -99, 50.5, 150]) * DEG
    # αR, αR (ψ just below 50), β, β (ψ < -150 wraps into β), αL, αL, β (just above 50),
    # other (φ > 0, ψ = 150)
    pops = ev.basin_populations(phi, psi)
    assert pops == {"beta": 3 / 8, "alpha_r": 2 / 8, "alpha_l": 2 / 8, "other": 1 / 8}


def test_even_subsample_spreads_over_the_whole_set() -> None:
    """Equal-size comparison keeps evenly spaced indices, from the start to near the end."""
    idx = ev.even_subsample(1000, 10)
    assert idx.tolist() == list(range(0, 1000, 100))
    assert ev.even_subsample(5, 10).tolist() == [0, 1, 2, 3, 4]


def test_free_energy_profile_is_minus_kt_log_p() -> None:
    """Two occupied bins with 3:1 counts differ by kT ln 3 (kJ/mol at 300 K); empty bins are NaN."""
    phi = np.array([-175, -175, -175, 5]) * DEG
    centres, f = ev.free_energy_profile(phi)
    assert f[0] == 0.0
    assert f[18] == pytest.approx(ev.KT_KJ_PER_MOL_300K * np.log(3))
    assert np.isnan(f[1])


def test_autocorrelation_and_integrated_time_of_a_known_process() -> None:
    """An angle flipping between 0 and π every 10 frames (z = ±1 square wave): C(k) = 1 − k/5 for
    k ≤ 10 (triangle down to −1), so τ_int = 1 + 2·(0.8 + 0.6 + 0.4 + 0.2) = 5 frames."""
    theta = np.repeat(np.tile([0.0, np.pi], 500), 10)
    c = ev.circular_autocorrelation(theta, 20)
    np.testing.assert_allclose(c[:11], 1 - np.arange(11) / 5, atol=0.01)
    assert ev.integrated_time(c) == pytest.approx(5.0, abs=0.05)


def test_autocorrelation_is_estimated_only_where_enough_frame_pairs_back_it() -> None:
    """One trajectory of 100 frames: lags up to N/2 = 50; of 30 frames: up to 10 (20 pairs at least); beyond,
    NaN, never a number from a handful of pairs."""
    rng = np.random.default_rng(0)
    long = ev.mean_autocorrelation([rng.uniform(-np.pi, np.pi, 100)], 99)
    assert np.isfinite(long[:51]).all() and np.isnan(long[51:]).all()
    short = ev.mean_autocorrelation([rng.uniform(-np.pi, np.pi, 30)], 29)
    assert np.isfinite(short[:11]).all() and np.isnan(short[11:]).all()


def test_transition_counts_and_rates_with_core_sets() -> None:
    """β β other αR αR β: the 'other' frame keeps β, so one β→αR and one αR→β transition."""
    states = [np.array([0, 0, -1, 1, 1, 0])]
    t = ev.transition_statistics(states, dt_ps=1000.0)  # 1 ns per frame
    assert t["counts"] == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    assert t["rate_out_per_ns"]["beta"] == pytest.approx(1 / 4)  # 4 ns in β (incl. the core-set frame)
    assert t["rate_out_per_ns"]["alpha_r"] == pytest.approx(1 / 2)
    assert t["rate_out_per_ns"]["alpha_l"] is None


def test_bond_validity_flags_a_stretched_bond_and_clash_flags_overlap(ala_traj) -> None:
    """A bond stretched by 0.15 Å fails; 0.05 Å passes; two distant heavy atoms moved together clash."""
    pairs = ev.bond_pairs(ala_traj.topology)
    x = ala_traj.xyz[:1].astype(np.float64)
    r0 = ev.bond_lengths(x, pairs)[0]
    i, j = pairs[0]
    for shift, ok in ((0.005, True), (0.015, False)):
        y = x.copy()
        direction = (y[0, j] - y[0, i]) / np.linalg.norm(y[0, j] - y[0, i])
        y[0, j] += shift * direction
        assert ev.bond_valid(y, pairs, r0)[0] == ok
    assert ev.clash_free(x, ala_traj.topology)[0]
    carbon = {a.index for a in ala_traj.topology.atoms if a.element.symbol == "C"}
    far = next(p for p in nonlocal_pairs(ala_traj.topology) if set(p.tolist()) <= carbon)
    y = x.copy()
    y[0, far[1]] = y[0, far[0]] + 0.05
    assert not ev.clash_free(y, ala_traj.topology)[0]


def _chain_topology(n: int):
    """A linear chain of ``n`` carbon atoms, 10 per residue (a stand-in for a large protein's bond graph)."""
    import mdtraj

    top = mdtraj.Topology()
    chain = top.add_chain()
    atoms = []
    for k in range(n):
        if k % 10 == 0:
            residue = top.add_residue("GLY", chain)
        atoms.append(top.add_atom(f"C{k % 10}", mdtraj.element.carbon, residue))
        if k:
            top.add_bond(atoms[-2], atoms[-1])
    return top


def test_the_clash_test_agrees_with_all_pairs_and_scales_to_thousands_of_atoms() -> None:
    """The k-d tree clash test gives the all-pairs answer on random 60-atom chains (some clashing, some not),
    and on a 3,000-atom chain × 20 frames it stays within a few MB (all pairs would be 4.5 M per frame)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    top = _chain_topology(60)
    pairs = nonlocal_pairs(top)
    radii = 0.17
    frames = rng.uniform(0, 6.5, size=(40, 60, 3))
    brute = np.array([np.all(np.linalg.norm(f[pairs[:, 0]] - f[pairs[:, 1]], axis=1) >= 2 * radii - ev.CLASH_OVERLAP_NM)
                      for f in frames])
    assert 0 < brute.sum() < len(brute)  # the case has both answers
    np.testing.assert_array_equal(ev.clash_free(frames, top), brute)
    big = _chain_topology(3000)
    walk = np.cumsum(rng.normal(scale=0.09, size=(20, 3000, 3)), axis=1)  # a random-walk chain, ~1.5 Å steps
    tracemalloc.start()
    ev.clash_free(walk, big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64e6, peak


@pytest.fixture(scope="module")
def md_stores(tmp_path_factory: pytest.TempPathFactory):
    """Two tiny independent vacuum runs (reference, training) of 20 ps."""
    import os

    from pipeline.protein.simulate import PeptideSimulation, simulate_peptide

    os.environ["VELOCAST_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    tmp = tmp_path_factory.mktemp("md")
    ref = simulate_peptide(
        params=PeptideSimulation(ns=0.02, seed=1, vacuum=True, equilibrate_ps=0),
        out=tmp / "ref.zarr",
        progress=False,
    )
    train = simulate_peptide(
        params=PeptideSimulation(ns=0.02, seed=2, vacuum=True, equilibrate_ps=0),
        out=tmp / "train.zarr",
        progress=False,
    )
    return tmp, ref, train


def test_evaluate_cli_writes_documented_metrics_and_plots(md_stores) -> None:
    """`velocast evaluate protein` on forecast-shaped samples: metrics.json with the documented keys,
    rama_js 0 when samples are the reference itself, plots and report.md."""
    from pipeline.protein.store import open_structure_store

    tmp, ref, train = md_stores
    r = open_structure_store(ref)
    x = r.frames()
    fc = write_structure_store(
        tmp / "fc.zarr",
        coordinates=x.reshape(2, 10, 22, 3),
        topology=r.topology,
        dims=("member", "frame", "atom", "xyz"),
        attrs={"time_step_ps": r.time_step_ps, "samples_per_cpu_second": 50.0},
    )
    out = tmp / "report"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "evaluate",
            "protein",
            "--samples",
            str(fc),
            "--reference",
            str(ref),
            "--training",
            str(train),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "metrics.json").read_text())
    for key in (
        "rama_js",
        "rama_js_training",
        "basins",
        "valid_fraction",
        "samples_per_cpu_second",
        "md_independent_samples_per_cpu_second",
    ):
        assert key in m
    assert m["rama_js"] == pytest.approx(0.0)
    assert 0.0 < m["rama_js_training"] <= 1.0
    assert set(m["basins"]) == {"samples", "reference", "training"}
    assert set(m["basins"]["samples"]) >= {"beta", "alpha_r", "alpha_l"}
    assert m["samples_per_cpu_second"] == 50.0
    assert m["md_independent_samples_per_cpu_second"] > 0
    assert m["bond_length_source"] == "force_field"
    assert (
        m["kind"] == "forecast"
        and m["transitions"]["samples"]["counts"] == m["transitions"]["reference"]["counts"]
    )
    for name in ("rama.png", "free_energy_phi.png", "sample.png", "autocorrelation.png", "rmsf.png", "report.md"):
        assert (out / name).stat().st_size > 0
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "<table>" in page  # self-contained: plots inlined
    acf = m["autocorrelation"]["samples"]["phi"]  # 2 trajectories of 10 frames: too few pairs beyond lag 0
    assert acf[0] is not None and all(v is None for v in acf[1:])
    assert "{" not in (out / "report.md").read_text()  # no raw Python dicts


def test_heavy_atom_samples_match_reference_atoms_by_name(md_stores) -> None:
    """Samples holding only heavy atoms get force-field bond lengths through the atom-name mapping,
    and their validity equals the reference's on the same atoms."""
    from pipeline.protein.store import open_structure_store

    tmp, ref, _ = md_stores
    r = open_structure_store(ref)
    heavy = r.topology.select("not element H")
    path = write_structure_store(
        tmp / "heavy.zarr", coordinates=r.frames()[:, heavy], topology=r.topology.subset(heavy)
    )
    m, _ = ev.evaluate_structures(samples=open_structure_store(path), reference=r)
    assert m["bond_length_source"] == "force_field"
    assert m["valid_fraction"] == pytest.approx(m["reference_valid_fraction"])
    assert m["bond_valid_fraction"] == pytest.approx(m["reference_bond_valid_fraction"])
    assert m["rama_js"] == pytest.approx(0.0)


def test_implied_timescales_of_a_two_state_chain_match_its_switching_rate() -> None:
    """A two-state Markov chain switching with probability p per frame has one process, t = −Δt / ln(1 − 2p): the
    deeptime MSM recovers it (at a lag of 5 frames) within 5 %, and reports no second process."""
    rng = np.random.default_rng(0)
    p = 0.01
    flips = rng.random(200_000) < p
    states = np.cumsum(flips) % 2
    found = ev.msm_timescales([states], lag_frames=5, dt_ps=2.0)["ps"]
    assert abs(found[0] / (-2.0 / np.log(1 - 2 * p)) - 1) < 0.05
    assert found[1] is None


def test_msm_credible_intervals_cover_the_truth_and_narrow_with_more_data() -> None:
    """The Bayesian MSM's 95 % interval of a two-state chain's timescale holds the true value, and 20× the data gives
    an interval at least 3× narrower (1/√20 ≈ 0.22)."""
    rng = np.random.default_rng(1)
    p, truth = 0.01, -2.0 / np.log(1 - 2 * 0.01)
    widths = []
    for n in (10_000, 200_000):
        states = np.cumsum(rng.random(n) < p) % 2
        found = ev.msm_timescales([states], lag_frames=5, dt_ps=2.0)
        low, high = found["ci95"][0]
        assert low <= truth <= high and low <= found["ps"][0] <= high
        assert found["ci95"][1] is None
        widths.append(high - low)
    assert widths[1] < widths[0] / 3
