"""Evaluation of generated conformations / trajectories against reference MD.

Definitions (all angles in radians internally, degrees in the basin table):

- Ramachandran histogram: (φ, ψ) of every residue with both angles, 36 × 36 bins of 10° over
  [-π, π)² (π wraps to -π), normalised to sum 1.
- ``rama_js``: Jensen–Shannon *distance* ``sqrt(JSD(P, Q))`` with log base 2, so it lies in [0, 1]
  (0 identical, 1 disjoint support), ``JSD = ½ KL(P‖M) + ½ KL(Q‖M)``, ``M = ½(P + Q)``. A histogram
  distance grows with sampling noise as the sets shrink, so the compared sets are made equal-sized:
  every set (samples, reference, training) is subsampled to the size of the smallest with evenly spaced
  indices (for MD this keeps the whole run's coverage, unlike a contiguous block).
- Basins (φ, ψ in degrees, half-open intervals): β/C7eq: φ < 0 and (ψ ≥ 50 or ψ < -150);
  αR: φ < 0 and -150 ≤ ψ < 50; αL (incl. C7ax): φ ≥ 0 and -100 ≤ ψ < 100. Everything else is "other".
- Bond validity: a structure is bond-valid when every topology bond is within 0.01 nm (0.1 Å) of its
  equilibrium length: the force field's (HarmonicBondForce r0 or constraint length, recorded by
  ``simulate`` as ``bond_lengths_nm``), else the median length in the reference store.
- Clash: two heavy atoms more than three links apart (bonds, and the virtual Cα–Cα links of a Cα trace) whose
  van der Waals spheres overlap by 0.06 nm (0.6 Å) or more: ChimeraX's default for structures without hydrogens
  (MolProbity's 0.4 Å assumes explicit hydrogens, whose own overlaps come first), with MolProbity's radii (C 0.17,
  N 0.155, O 0.14, S 0.18, P 0.18 nm; a Cα of a trace is a carbon). Pairs of two N/O atoms are the donor and acceptor of hydrogen bonds and salt bridges, which
  sit at 0.24–0.32 nm, inside their radii sum: they clash only closer than 0.22 nm, shorter than any hydrogen
  bond; so do the atoms of an acidic and a basic group (:data:`SALT_BRIDGE_ATOMS`: a salt bridge presses the
  carboxylate's carbon against the amine). Hydrogens are left out (their positions follow from the heavy atoms and
  their contacts are what hydrogen bonds are made of). ``valid`` = bond-valid and clash-free.
- Free energy along φ: ``F(φ) = −kT ln p(φ)`` on 36 bins, kT at 300 K in kJ/mol, minimum shifted to 0.
- Autocorrelation of an angle θ (circular): with z = e^{iθ} and z̄ its mean,
  ``C(τ) = Re⟨(z(t+τ) − z̄)·conj(z(t) − z̄)⟩ / ⟨|z − z̄|²⟩`` (1 at τ = 0).
- Decorrelation time: integrated autocorrelation time ``τ_int = Δt (1 + 2 Σ_{k≥1} C(kΔt))``, summed up to the
  first lag where C ≤ 0, the larger of φ's and ψ's. Independent samples of an MD store =
  frames × Δt / τ_int; per CPU second with the MD cost ``md_cpu_seconds`` recorded in the store.
- Transitions (forecast trajectories and MD): core-set assignment (a frame outside every basin keeps the
  last basin visited); counts of i → j changes and rates = transitions out of i per ns spent in i.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.protein.geometry import even_subsample
from pipeline.protein.graph import bond_pairs, local_pairs

if TYPE_CHECKING:
    import mdtraj

    from pipeline.protein.store import StructureStore

BINS = 36
BOND_TOLERANCE_NM = 0.01
CLASH_OVERLAP_NM = 0.06
POLAR_CLASH_NM = 0.22
VDW_RADII_NM = {"H": 0.117, "C": 0.17, "N": 0.155, "O": 0.14, "S": 0.18, "P": 0.18}
"""The van der Waals radii of MolProbity's probe (Word et al. 1999, J. Mol. Biol. 285, 1711), with which its
clashscore counts overlaps of 0.4 Å or more."""
KT_KJ_PER_MOL_300K = 0.0083144626 * 300.0
BASIN_NAMES = ("beta", "alpha_r", "alpha_l")
BASIN_BOUNDS_DEG = {
    "beta": "phi < 0 and (psi >= 50 or psi < -150)",
    "alpha_r": "phi < 0 and -150 <= psi < 50",
    "alpha_l": "phi >= 0 and -100 <= psi < 100",
}


# ---------------------------------------------------------------- distributions


def rama_histogram(phi: np.ndarray, psi: np.ndarray, *, bins: int = BINS) -> np.ndarray:
    """Normalised (bins, bins) histogram of (φ, ψ) over [-π, π)²; rows index φ, columns ψ."""
    phi = _wrap(np.ravel(phi))
    psi = _wrap(np.ravel(psi))
    edges = np.linspace(-np.pi, np.pi, bins + 1)
    hist, _, _ = np.histogram2d(phi, psi, bins=[edges, edges])
    total = hist.sum()
    return hist / total if total > 0 else hist


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance sqrt(JSD) with log base 2, in [0, 1]; inputs are normalised first."""
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return float(np.sqrt(max(0.0, 0.5 * kl(p) + 0.5 * kl(q))))


def even_histogram(angles: AngleSet, n: int) -> np.ndarray:
    """The Ramachandran histogram of ``n`` evenly spaced (φ, ψ) pairs of ``angles`` (all when fewer): sets
    compared by JS distance are made equal-sized this way (see the module doc)."""
    keep = even_subsample(len(angles.phi), n)
    return rama_histogram(angles.phi[keep], angles.psi[keep])


def assign_basins(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Basin index per (φ, ψ) pair: 0 β/C7eq, 1 αR, 2 αL, -1 other (bounds in the module docstring)."""
    f = np.degrees(_wrap(np.asarray(phi)))
    s = np.degrees(_wrap(np.asarray(psi)))
    out = np.full(f.shape, -1, dtype=np.int64)
    out[(f < 0) & ((s >= 50) | (s < -150))] = 0
    out[(f < 0) & (s >= -150) & (s < 50)] = 1
    out[(f >= 0) & (s >= -100) & (s < 100)] = 2
    return out


def basin_populations(phi: np.ndarray, psi: np.ndarray) -> dict[str, float]:
    """Fraction of (φ, ψ) pairs in each basin: {"beta", "alpha_r", "alpha_l", "other"}."""
    labels = assign_basins(phi, psi).ravel()
    n = max(1, labels.size)
    pops = {name: float(np.sum(labels == k) / n) for k, name in enumerate(BASIN_NAMES)}
    pops["other"] = float(np.sum(labels == -1) / n)
    return pops


def free_energy_profile(
    phi: np.ndarray, *, bins: int = BINS, kt: float = KT_KJ_PER_MOL_300K
) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres in rad, F(φ) = −kT ln p in kJ/mol with min 0; NaN where the bin is empty)."""
    edges = np.linspace(-np.pi, np.pi, bins + 1)
    hist, _ = np.histogram(_wrap(np.ravel(phi)), bins=edges)
    p = hist / max(1, hist.sum())
    with np.errstate(divide="ignore"):
        f = -kt * np.log(p)
    f[~np.isfinite(f)] = np.nan
    if np.isfinite(f).any():
        f = f - np.nanmin(f)
    return 0.5 * (edges[:-1] + edges[1:]), f


# ---------------------------------------------------------------- validity


def bond_lengths(coordinates: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(n, n_bonds) distances in nm."""
    x = np.asarray(coordinates, dtype=np.float64)
    return np.linalg.norm(x[:, pairs[:, 0]] - x[:, pairs[:, 1]], axis=-1)


def bond_valid(
    coordinates: np.ndarray, pairs: np.ndarray, r0: np.ndarray, *, tol_nm: float = BOND_TOLERANCE_NM
) -> np.ndarray:
    """(n,) True where every bond is within ``tol_nm`` of ``r0``."""
    if len(pairs) == 0:
        return np.ones(len(coordinates), dtype=bool)
    return np.all(np.abs(bond_lengths(coordinates, pairs) - r0[None, :]) <= tol_nm, axis=1)


SALT_BRIDGE_ATOMS = {
    "acid": {"ASP": {"CG", "OD1", "OD2"}, "GLU": {"CD", "OE1", "OE2"}, "*": {"OXT"}},
    "base": {"LYS": {"CE", "NZ"}, "ARG": {"NE", "CZ", "NH1", "NH2"}, "HIS": {"CG", "ND1", "CE1", "NE2", "CD2"}},
}
"""The charged groups whose pairs (an acid atom with a base atom) form salt bridges; a terminal carboxylate's OXT
counts in any residue."""


def salt_bridge_side(topology: mdtraj.Topology, atoms: np.ndarray) -> np.ndarray:
    """Per atom: +1 base group atom, -1 acid group atom, 0 neither (:data:`SALT_BRIDGE_ATOMS`)."""
    def side(atom: Any) -> int:
        for sign, groups in ((-1, SALT_BRIDGE_ATOMS["acid"]), (1, SALT_BRIDGE_ATOMS["base"])):
            if atom.name in groups.get(atom.residue.name, set()) | groups.get("*", set()):
                return sign
        return 0

    return np.array([side(topology.atom(int(k))) for k in atoms], dtype=np.int64)


def clash_limits(topology: mdtraj.Topology) -> tuple[np.ndarray, np.ndarray]:
    """(heavy-atom indices, their van der Waals radii in nm) of the clash test."""
    heavy = [a for a in topology.atoms if a.element is None or a.element.symbol != "H"]
    radii = np.array([VDW_RADII_NM.get(a.element.symbol if a.element is not None else "", 0.17) for a in heavy])
    return np.array([a.index for a in heavy], dtype=np.int64), radii


def clash_free(coordinates: np.ndarray, topology: mdtraj.Topology) -> np.ndarray:
    """(n,) True where no two heavy atoms more than three links apart overlap (definition in the module docstring).

    Frame by frame with a k-d tree (``scipy.spatial.cKDTree``): only pairs within the largest possible limit are
    ever listed, so memory grows with the atoms, not their square (a 3,000-atom protein would otherwise need
    4.5 M pairs per frame)."""
    from scipy.spatial import cKDTree

    n = topology.n_atoms
    heavy, radii = clash_limits(topology)
    polar = np.array([topology.atom(int(k)).element is not None and topology.atom(int(k)).element.symbol in "NO"
                      for k in heavy])
    charge = salt_bridge_side(topology, heavy)
    local = local_pairs(topology)
    reach = 2.0 * float(radii.max()) - CLASH_OVERLAP_NM if len(heavy) else 0.0
    out = np.ones(len(coordinates), dtype=bool)
    for f, frame in enumerate(np.asarray(coordinates, dtype=np.float64)[:, heavy]):
        close = cKDTree(frame).query_pairs(reach, output_type="ndarray")
        if len(close) == 0:
            continue
        i, j = close.min(axis=1), close.max(axis=1)
        far = ~np.isin(heavy[i] * n + heavy[j], local)
        i, j = i[far], j[far]
        d = np.linalg.norm(frame[i] - frame[j], axis=1)
        bridged = (polar[i] & polar[j]) | (charge[i] * charge[j] < 0)
        limit = np.where(bridged, POLAR_CLASH_NM, radii[i] + radii[j] - CLASH_OVERLAP_NM)
        out[f] = not np.any(d < limit)
    return out


def reference_bond_lengths(
    store: StructureStore, reference: StructureStore, pairs: np.ndarray
) -> tuple[np.ndarray, str]:
    """r0 per bond of ``store``: force-field lengths recorded in ``store`` or ``reference``, else the
    median length in the reference. Atoms are matched by (chain, residue, atom name), so the samples may
    be a subset of the reference's atoms (e.g. heavy atoms only)."""
    from pipeline.errors import UserError

    own = store.attrs.get("bond_lengths_nm")
    mapping = atom_mapping(store.topology, reference.topology)
    for table, index in ((own, np.arange(store.n_atoms)), (reference.attrs.get("bond_lengths_nm"), mapping)):
        if not table or index is None:
            continue
        lookup = {(min(int(i), int(j)), max(int(i), int(j))): float(r) for i, j, r in table}
        keys = [tuple(sorted((int(index[i]), int(index[j])))) for i, j in pairs]
        if all(k in lookup for k in keys):
            return np.array([lookup[k] for k in keys]), "force_field"
    if mapping is None:
        raise UserError(
            "samples have atoms the reference lacks (matched by chain, residue and atom name) and no "
            "force-field bond lengths; evaluate against a reference with the same atoms",
            path=reference.path,
        )
    ref = reference.frames(even_subsample(reference.n_structures, 5000))[:, mapping]
    return np.median(bond_lengths(ref, pairs), axis=0), "reference_median"


def atom_mapping(topology: mdtraj.Topology, reference: mdtraj.Topology) -> np.ndarray | None:
    """Index in ``reference`` of each atom of ``topology``, matched by (chain, residue, name); or None."""

    def key(atom: Any) -> tuple[int, int, str]:
        return (atom.residue.chain.index, atom.residue.index, atom.name)

    ref_index = {key(a): a.index for a in reference.atoms}
    if topology.n_atoms == reference.n_atoms and all(
        ref_index.get(key(a)) == a.index for a in topology.atoms
    ):
        return np.arange(topology.n_atoms)
    try:
        return np.array([ref_index[key(a)] for a in topology.atoms], dtype=np.int64)
    except KeyError:
        return None


# ---------------------------------------------------------------- dynamics


def circular_autocorrelation(theta: np.ndarray, max_lag: int) -> np.ndarray:
    """C(k), k = 0 … max_lag, of an angle time series (definition in the module docstring)."""
    z = np.exp(1j * np.asarray(theta, dtype=np.float64))
    z = z - z.mean()
    n = len(z)
    var = float(np.mean(np.abs(z) ** 2))
    max_lag = int(min(max_lag, n - 1))
    if var <= 1e-15 or max_lag < 0:
        return np.ones(max(1, max_lag + 1))
    size = 1 << int(np.ceil(np.log2(2 * n)))
    fz = np.fft.fft(z, size)
    acf = np.fft.ifft(fz * np.conj(fz))[: max_lag + 1]
    # ifft(F·conj F)[k] = Σ_t z[t+k] conj z[t]
    return np.real(acf) / (n - np.arange(max_lag + 1)) / var


MIN_LAG_PAIRS = 20
"""An autocorrelation lag is estimated only from at least this many frame pairs, and from at least half the
pairs of lag 0 (for one trajectory of N frames: lags up to N/2); NaN beyond. The last lags of a short
trajectory rest on a handful of pairs and swing past ±1."""


def mean_autocorrelation(series: list[np.ndarray], max_lag: int, *, min_pairs: int = MIN_LAG_PAIRS) -> np.ndarray:
    """Frame-weighted mean of :func:`circular_autocorrelation` over several trajectories; NaN at lags with fewer
    than ``min_pairs`` frame pairs in all or fewer than half the pairs of lag 0."""
    max_lag = int(min(max_lag, max(len(s) for s in series) - 1))
    total = np.zeros(max_lag + 1)
    weight = np.zeros(max_lag + 1)
    for s in series:
        if len(s) < 2:
            continue
        c = circular_autocorrelation(s, max_lag)
        w = (len(s) - np.arange(len(c))).astype(float)
        total[: len(c)] += c * w
        weight[: len(c)] += w
    enough = (weight >= max(min_pairs, 1)) & (weight >= 0.5 * weight[0])
    return np.where(enough, total / np.maximum(weight, 1), np.nan)


def integrated_time(acf: np.ndarray) -> float:
    """τ_int in frames: 1 + 2 Σ_{k≥1} C(k), summed up to (not including) the first k with C(k) ≤ 0."""
    acf = np.asarray(acf)
    tail = acf[1:]
    stop = np.flatnonzero(~(tail > 0))
    end = int(stop[0]) if len(stop) else len(tail)
    return float(1.0 + 2.0 * np.sum(tail[:end]))


def core_set_states(labels: np.ndarray) -> np.ndarray:
    """Replace 'other' (-1) by the last basin visited; leading 'other' frames stay -1."""
    out = np.asarray(labels).copy()
    last = -1
    for k in range(len(out)):
        if out[k] == -1:
            out[k] = last
        else:
            last = out[k]
    return out


def transition_statistics(state_series: list[np.ndarray], dt_ps: float) -> dict[str, Any]:
    """Counts of basin changes i → j and rates (per ns spent in i) over core-set state series."""
    counts = np.zeros((3, 3), dtype=np.int64)
    frames_in = np.zeros(3, dtype=np.int64)
    for states in state_series:
        s = core_set_states(states)
        valid = s >= 0
        frames_in += np.bincount(s[valid], minlength=3)[:3]
        a, b = s[:-1], s[1:]
        change = (a >= 0) & (b >= 0) & (a != b)
        np.add.at(counts, (a[change], b[change]), 1)
    time_ns = frames_in * dt_ps / 1000.0
    out_counts = counts.sum(axis=1)
    rates = np.where(time_ns > 0, out_counts / np.maximum(time_ns, 1e-30), np.nan)
    return {
        "states": list(BASIN_NAMES),
        "counts": counts.tolist(),
        "rate_out_per_ns": {name: _num(rates[k]) for k, name in enumerate(BASIN_NAMES)},
        "time_ns": float(sum(len(s) for s in state_series) * dt_ps / 1000.0),
    }


MSM_POSTERIOR_SAMPLES = 200


def msm_timescales(state_series: list[np.ndarray], *, lag_frames: int, dt_ps: float, k: int = 2,
                   seed: int = 0) -> dict[str, list]:
    """``{"ps": [...], "ci95": [[low, high], ...]}``: the ``k`` slowest implied timescales ``t_i = −τ / ln|λ_i|``
    of a reversible maximum-likelihood Markov state model (deeptime) of core-set state series at lag
    ``τ = lag_frames · dt_ps``, on the largest connected set, and their 95 % credible intervals (the 2.5 and 97.5
    percentiles of :data:`MSM_POSTERIOR_SAMPLES` reversible transition matrices drawn from the posterior of the
    effective counts by deeptime's Bayesian MSM sampler, seeded with ``seed``; effective counts discount the
    correlation of sliding windows). None where the model has fewer processes (a basin never left or never
    reached)."""
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MarkovStateModel, MaximumLikelihoodMSM
    from deeptime.markov.tools.estimation.dense.tmat_sampling.tmatrix_sampler import TransitionMatrixSampler

    empty: dict[str, list] = {"ps": [None] * k, "ci95": [None] * k}
    series = []
    for states in state_series:
        s = core_set_states(states)
        s = s[np.argmax(s >= 0):] if (s >= 0).any() else s[:0]
        if len(s) > lag_frames:
            series.append(s.astype(np.int32))
    if not series:
        return empty
    counts = TransitionCountEstimator(lagtime=lag_frames, count_mode="sliding").fit(series).fetch_model()
    connected = counts.submodel_largest()
    if connected.n_states < 2:
        return empty
    n = min(k, connected.n_states - 1)
    msm = MaximumLikelihoodMSM(reversible=True).fit(connected).fetch_model()
    found = [float(t) * dt_ps for t in msm.timescales(n)]
    effective = TransitionCountEstimator(lagtime=lag_frames, count_mode="effective").fit(series).fetch_model()
    effective = effective.submodel_largest()
    prior = MaximumLikelihoodMSM(reversible=True).fit(effective).fetch_model()
    # deeptime's own Bayesian MSM sampler (BayesianMSM draws it unseeded); seeded here: same data, same interval
    sampler = TransitionMatrixSampler(effective.count_matrix, reversible=True, P0=prior.transition_matrix,
                                      n_steps=max(1, int(np.sqrt(effective.n_states))), seed=seed)
    draws = np.array([MarkovStateModel(P, lagtime=lag_frames).timescales(n)
                      for P in sampler.sample(nsamples=MSM_POSTERIOR_SAMPLES)])
    low, high = np.percentile(draws, [2.5, 97.5], axis=0) * dt_ps
    intervals = [[float(a), float(b)] for a, b in zip(low, high)]
    return {"ps": found + [None] * (k - n), "ci95": intervals + [None] * (k - n)}


# ---------------------------------------------------------------- the evaluation


@dataclass
class AngleSet:
    """φ/ψ of one store: pooled (n,) arrays plus per-trajectory series (first residue pair)."""

    phi: np.ndarray
    psi: np.ndarray
    series_phi: list[np.ndarray]
    series_psi: list[np.ndarray]


def angles_of(store: StructureStore) -> AngleSet:
    """φ/ψ of every trajectory of ``store``, reading only the backbone atoms they need, 5,000 frames at a time
    (memory stays flat however long the MD)."""
    from pipeline.protein.geometry import backbone_dihedral_indices, phi_psi

    phi_q, psi_q = backbone_dihedral_indices(store.topology)
    atoms = np.unique(np.concatenate([phi_q.ravel(), psi_q.ravel()]))
    backbone = store.topology.subset(atoms)
    pieces: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for k, frames in store.trajectory_pieces(atoms):
        pieces.setdefault(k, []).append(phi_psi(frames, backbone))
    series_phi = [np.concatenate([p for p, _ in parts]) for parts in pieces.values()]
    series_psi = [np.concatenate([q for _, q in parts]) for parts in pieces.values()]
    return AngleSet(
        phi=np.concatenate([p.ravel() for p in series_phi]),
        psi=np.concatenate([p.ravel() for p in series_psi]),
        series_phi=[p[:, 0] for p in series_phi],
        series_psi=[p[:, 0] for p in series_psi],
    )


def md_decorrelation(
    store: StructureStore, angles: AngleSet, *, max_lag_frames: int = 20000
) -> dict[str, Any]:
    """Integrated autocorrelation times of φ, ψ (ps), independent samples, and per CPU-second."""
    dt = store.time_step_ps
    if dt is None:
        return {
            "time_step_ps": None,
            "tau_ps": None,
            "independent_samples": None,
            "md_cpu_seconds": None,
            "independent_samples_per_cpu_second": None,
        }
    longest = max(len(s) for s in angles.series_phi)
    lag = min(max_lag_frames, max(1, longest // 2))
    tau_phi = integrated_time(mean_autocorrelation(angles.series_phi, lag))
    tau_psi = integrated_time(mean_autocorrelation(angles.series_psi, lag))
    tau_frames = max(tau_phi, tau_psi, 1.0)
    n_frames = sum(len(s) for s in angles.series_phi)
    independent = n_frames / tau_frames
    cpu = store.attrs.get("md_cpu_seconds")
    return {
        "time_step_ps": dt,
        "tau_phi_ps": tau_phi * dt,
        "tau_psi_ps": tau_psi * dt,
        "tau_ps": tau_frames * dt,
        "frames": n_frames,
        "independent_samples": independent,
        "md_cpu_seconds": cpu,
        "independent_samples_per_cpu_second": (independent / cpu) if cpu else None,
    }


def samples_per_cpu_second(store: StructureStore) -> float | None:
    """``samples_per_cpu_second`` recorded by the sampler (top-level attr or in provenance), else None."""
    value = store.attrs.get("samples_per_cpu_second")
    if value is None:
        value = (store.attrs.get("provenance") or {}).get("samples_per_cpu_second")
    return None if value is None else float(value)


MAX_COMPARED_VALUES = 4_000_000
"""MD frames read for the validity and RMSF comparisons: at most this many coordinates' worth (evenly spaced
frames, and never more than 20,000): 48 MB of float32 whatever the protein's size."""


def compared_frames(store: StructureStore, *, limit: int = 20000) -> np.ndarray:
    """Evenly spaced structures of ``store``, at most ``limit`` and :data:`MAX_COMPARED_VALUES` values' worth."""
    keep = min(limit, max(200, MAX_COMPARED_VALUES // max(1, store.n_atoms)))
    return store.frames(even_subsample(store.n_structures, keep))


def has_phi_psi(topology: mdtraj.Topology) -> bool:
    """True when some residue has both a backbone φ and ψ (a Cα trace or a lone residue has none)."""
    from pipeline.protein.geometry import backbone_dihedral_indices

    phi, psi = backbone_dihedral_indices(topology)
    return bool(set(phi[:, 2].tolist()) & set(psi[:, 1].tolist())) if len(phi) and len(psi) else False


def ca_series(store: StructureStore, atoms: np.ndarray, *, max_frames: int = 200_000) -> list[np.ndarray]:
    """The store's trajectories as time series of ``atoms`` (read chunk by chunk, nothing else), each strided so
    that all of them together hold at most ``max_frames`` frames."""
    stride = max(1, -(-store.n_structures // max_frames))
    pieces: dict[int, list[np.ndarray]] = {}
    seen: dict[int, int] = {}
    for k, frames in store.trajectory_pieces(np.asarray(atoms)):
        start = (-seen.get(k, 0)) % stride
        pieces.setdefault(k, []).append(frames[start::stride])
        seen[k] = seen.get(k, 0) + len(frames)
    return [np.concatenate(v) for v in pieces.values()]


def ramachandran_metrics(angles: dict[str, AngleSet]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(φ, ψ) statistics of every set: JS distances, basin populations, free energy along φ (+ plot arrays)."""
    n_equal = min(len(a.phi) for a in angles.values())
    hists = {name: even_histogram(a, n_equal) for name, a in angles.items()}
    metrics = {
        "rama_js": js_distance(hists["samples"], hists["reference"]),
        "rama_js_training": js_distance(hists["training"], hists["reference"]) if "training" in hists else None,
        "rama_js_n": n_equal,
        "rama_bins": [BINS, BINS],
        "basins": {name: basin_populations(a.phi, a.psi) for name, a in angles.items()},
        "basin_definitions_deg": BASIN_BOUNDS_DEG,
    }
    return metrics, {"angles": angles, "hists": hists,
                     "free_energy": {name: free_energy_profile(a.phi) for name, a in angles.items()}}


def evaluate_structures(
    *,
    samples: StructureStore,
    reference: StructureStore,
    training: StructureStore | None = None,
    autocorrelation_lags: int = 200,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics dict — the metrics.json schema —, arrays for the plots). The (φ, ψ) metrics need a topology with
    backbone dihedrals; the fold metrics (:mod:`pipeline.protein.fold`) need at least 3 Cα."""
    from pipeline.protein.fold import ca_atoms, fold_metrics

    sets = {"samples": samples, "reference": reference} | (
        {"training": training} if training is not None else {}
    )
    x = samples.frames()
    md_frames = {name: compared_frames(store) for name, store in sets.items() if name != "samples"}
    angles = {name: angles_of(store) for name, store in sets.items()} if has_phi_psi(samples.topology) else None
    metrics: dict[str, Any] = {"n_structures": {name: store.n_structures for name, store in sets.items()}}
    arrays: dict[str, Any] = {}
    if angles is not None:
        rama, arrays = ramachandran_metrics(angles)
        metrics |= rama
    # validity
    pairs = bond_pairs(samples.topology)
    r0, r0_source = reference_bond_lengths(samples, reference, pairs)
    bonds_ok = bond_valid(x, pairs, r0)
    no_clash = clash_free(x, samples.topology)
    metrics |= {
        "valid_fraction": float(np.mean(bonds_ok & no_clash)),
        "bond_valid_fraction": float(np.mean(bonds_ok)),
        "clash_free_fraction": float(np.mean(no_clash)),
        "bond_length_source": r0_source,
        "bond_max_abs_error_nm": float(np.max(np.abs(bond_lengths(x, pairs) - r0))) if len(pairs) else 0.0,
    }
    mapping = atom_mapping(samples.topology, reference.topology)
    if mapping is not None:
        xr = md_frames["reference"][:, mapping]
        reference_bonds_ok, reference_no_clash = bond_valid(xr, pairs, r0), clash_free(xr, samples.topology)
        metrics["reference_valid_fraction"] = float(np.mean(reference_bonds_ok & reference_no_clash))
        metrics["reference_clash_free_fraction"] = float(np.mean(reference_no_clash))
        # thermal bond fluctuations at 300 K (σ ≈ 0.003 nm) put even MD frames past 0.01 nm now and then
        metrics["reference_bond_valid_fraction"] = float(np.mean(reference_bonds_ok))
    # the fold, against the training frames when given
    md_name = "training" if training is not None else "reference"
    if mapping is not None or md_name == "training":
        ca = ca_atoms(samples.topology)
        md_x = md_frames[md_name] if md_name == "training" else md_frames[md_name][:, mapping]
        fold, fold_arrays = fold_metrics(x, md_x, samples.topology, md_series=ca_series(
            sets[md_name], ca if md_name == "training" else mapping[ca]))
        if fold:
            metrics["fold"] = {"against": md_name, **fold}
            arrays["fold"] = fold_arrays
    # cost
    decor = md_decorrelation(sets[md_name], angles[md_name]) if angles is not None else {
        "time_step_ps": sets[md_name].time_step_ps, "tau_ps": None, "independent_samples": None,
        "md_cpu_seconds": sets[md_name].attrs.get("md_cpu_seconds"), "independent_samples_per_cpu_second": None}
    metrics |= {
        "samples_per_cpu_second": samples_per_cpu_second(samples),
        "md_independent_samples_per_cpu_second": decor["independent_samples_per_cpu_second"],
        "md_decorrelation": {"store": md_name, **decor},
    }
    sp, md = metrics["samples_per_cpu_second"], metrics["md_independent_samples_per_cpu_second"]
    metrics["speedup_vs_md"] = (sp / md) if sp and md else None
    arrays["rmsf"] = {name: residue_rmsf(x if name == "samples" else md_frames[name], store.topology)
                      for name, store in sets.items()}
    # dynamics: forecasts (member, frame, …) and any multi-frame time series with a time step
    is_forecast = bool(samples.dims) and samples.dims[0] == "member"
    metrics["kind"] = "forecast" if is_forecast else "ensemble"
    if is_forecast and angles is not None:
        dyn: dict[str, Any] = {}
        acfs: dict[str, Any] = {}
        for name in ("samples", "reference"):
            store, a = sets[name], angles[name]
            dt = store.time_step_ps or 1.0
            states = [assign_basins(p, s) for p, s in zip(a.series_phi, a.series_psi)]
            dyn[name] = transition_statistics(states, dt)
            lag = min(autocorrelation_lags, max(len(s) for s in a.series_phi) - 1)
            acfs[name] = {
                "lag_ps": (np.arange(lag + 1) * dt).tolist(),
                "phi": mean_autocorrelation(a.series_phi, lag).tolist(),
                "psi": mean_autocorrelation(a.series_psi, lag).tolist(),
            }
        metrics["transitions"] = dyn
        metrics["autocorrelation"] = acfs
        metrics["implied_timescales"] = msm_comparison(sets, angles)
        arrays["autocorrelation"] = acfs
    return metrics, arrays


def msm_comparison(sets: dict[str, StructureStore], angles: dict[str, AngleSet]) -> dict[str, Any]:
    """The two slowest implied timescales of the forecast trajectories and of the reference MD (with 95 % credible
    intervals), each an MSM of the same core-set basin discretisation at the forecast's lag (one trajectory frame;
    that many MD frames)."""
    lag_ps = sets["samples"].time_step_ps or 1.0
    md_dt = sets["reference"].time_step_ps or lag_ps
    out: dict[str, Any] = {"lag_ps": lag_ps, "states": list(BASIN_NAMES)}
    for name, dt, lag in (("samples", lag_ps, 1), ("reference", md_dt, max(1, round(lag_ps / md_dt)))):
        a = angles[name]
        found = msm_timescales([assign_basins(p, q) for p, q in zip(a.series_phi, a.series_psi)],
                               lag_frames=lag, dt_ps=dt)
        out[name], out[f"{name}_ci95"] = found["ps"], found["ci95"]
    out["ratio"] = [None if s is None or r is None else s / r for s, r in zip(out["samples"], out["reference"])]
    return out


def residue_rmsf(frames: np.ndarray, topology: mdtraj.Topology, *, max_frames: int = 5000) -> dict[str, Any]:
    """Per-residue RMSF (Å) of ``frames`` (n, atom, xyz; nm) after optimal superposition on their mean structure
    (mdtraj.rmsf; Cα where the residue has one, else the mean over its atoms); at most ``max_frames``
    evenly spaced frames."""
    import mdtraj

    from pipeline.console import native_output_silenced

    frames = frames[even_subsample(len(frames), max_frames)]
    traj = mdtraj.Trajectory(frames, topology)
    mean = mdtraj.Trajectory(frames.mean(axis=0, keepdims=True), topology)
    # mdtraj's QCP superposition prints "UNCONVERGED ROTATION MATRIX" on stderr for near-degenerate frames
    # (it then keeps the frame unrotated): a message per frame is noise to a user, not a result
    with native_output_silenced():
        traj.superpose(mean)
        per_atom = 10.0 * mdtraj.rmsf(traj, None, parallel=False)  # about the mean positions; nm → Å
    labels, values = [], []
    for residue in topology.residues:
        atoms = [a.index for a in residue.atoms]
        ca = [a.index for a in residue.atoms if a.name == "CA"]
        labels.append(f"{residue.name}{residue.resSeq}")
        values.append(float(per_atom[ca[0]] if ca else per_atom[atoms].mean()))
    return {"residues": labels, "rmsf_angstrom": values}


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Map angles to [-π, π)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
