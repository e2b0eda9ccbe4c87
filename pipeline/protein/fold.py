"""Whether generated structures keep the chain and the fold of a protein, at any size, on its Cα trace.

Every figure compares the samples with a set of MD frames (the training frames when given, else the reference):

- Chain validity: a structure is chain-valid when every consecutive Cα–Cα distance (consecutive residues of one
  chain, chain breaks excluded as in :mod:`pipeline.protein.chain`) is within :data:`CHAIN_TOLERANCE_NM` of the MD
  frames' mean for that pair (≈ 0.38 nm; a cis peptide's ≈ 0.29 nm is its own pair's mean).
- Radius of gyration of the Cα (mdtraj): mean and standard deviation per set.
- Nearest-frame RMSD: each structure's smallest Cα RMSD (optimal superposition, mdtraj) to the MD frames; the MD
  frames' own nearest-neighbour RMSD leaves the frame itself out. A median above the MD frames' own says the
  samples are not copies of frames.
- Principal components (scikit-learn's PCA) of the MD frames' aligned Cα coordinates; every set is projected on
  them. Coverage of PC1 is the fraction of the MD frames' PC1 range that the samples' range covers.
- TICA (deeptime) of the MD trajectories, where they are time series: the slowest linear combination of the
  aligned Cα coordinates (reduced to their first :data:`TICA_PCA_COMPONENTS` principal components first, since
  a short trajectory of a large protein has fewer frames than coordinates) at a lag of 1 % of the median
  trajectory length (at least one frame). Every set is projected on TIC1: its range coverage, as for PC1, and the
  Jensen–Shannon distance (base 2) between the samples' and the MD frames' TIC1 histograms (50 bins over the MD
  range, samples outside it in the end bins).
- Contact map: the fraction of structures in which a Cα pair at least 3 residues apart is within
  :data:`CONTACT_NM`; the agreement is the mean absolute difference of those frequencies over the pairs in contact
  in at least 5 % of either set, and their Pearson correlation.

Nothing holds all atom pairs of all frames: distances are computed ``chunk`` frames at a time, and at most
:data:`MAX_COMPARISON_FRAMES` evenly spaced MD frames are compared.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.protein.chain import CHAIN_BREAK_NM, mean_distances
from pipeline.protein.geometry import even_subsample, kabsch_align, mean_structure

if TYPE_CHECKING:
    import mdtraj

CHAIN_TOLERANCE_NM = 0.03
CONTACT_NM = 0.8
CONTACT_MIN_SEPARATION = 3
MAX_COMPARISON_FRAMES = 2000
TICA_PCA_COMPONENTS = 20
TICA_BINS = 50


def ca_atoms(topology: mdtraj.Topology) -> np.ndarray:
    """Indices of the Cα atoms, in residue order."""
    return np.array([a.index for a in topology.atoms if a.name == "CA"], dtype=np.int64)


def consecutive_ca(topology: mdtraj.Topology) -> np.ndarray:
    """(k, 2) positions in :func:`ca_atoms` of the Cα of consecutive residues of one chain."""
    position = {int(a): k for k, a in enumerate(ca_atoms(topology))}
    pairs = []
    for chain in topology.chains:
        cas = [next((a.index for a in r.atoms if a.name == "CA"), None) for r in chain.residues]
        pairs += [(position[a], position[b]) for a, b in pairwise(cas) if a is not None and b is not None]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _trajectory(ca: np.ndarray) -> mdtraj.Trajectory:
    import mdtraj

    top = mdtraj.Topology()
    chain = top.add_chain()
    for _ in range(ca.shape[1]):
        top.add_atom("CA", mdtraj.element.carbon, top.add_residue("GLY", chain))
    return mdtraj.Trajectory(np.asarray(ca, dtype=np.float32), top)


def nearest_rmsd(structures: np.ndarray, frames: np.ndarray, *, leave_self_out: bool = False) -> np.ndarray:
    """(n,) smallest RMSD (nm, optimal superposition) of each structure (n, N, 3) to ``frames`` (m, N, 3); with
    ``leave_self_out`` the structures are the frames and each skips itself."""
    import mdtraj

    target, ref = _trajectory(structures), _trajectory(frames)
    best = np.full(len(structures), np.inf)
    for k in range(len(frames)):
        d = mdtraj.rmsd(target, ref, k, parallel=False)
        if leave_self_out:
            d[k] = np.inf
        np.minimum(best, d, out=best)
    return best


def contact_frequencies(ca: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """Fraction of structures (n, N, 3) with each Cα pair (i < j − 2, upper triangle order) within CONTACT_NM."""
    i, j = np.triu_indices(ca.shape[1], CONTACT_MIN_SEPARATION)
    counts = np.zeros(len(i))
    for begin in range(0, len(ca), chunk):
        x = np.asarray(ca[begin:begin + chunk], dtype=np.float64)
        counts += (np.linalg.norm(x[:, i] - x[:, j], axis=-1) < CONTACT_NM).sum(axis=0)
    return counts / max(1, len(ca))


def _coverage(samples: np.ndarray, md: np.ndarray) -> float:
    """Fraction of the MD values' range (1-D) that the samples' range covers."""
    lo, hi = md.min(), md.max()
    covered = max(0.0, min(hi, samples.max()) - max(lo, samples.min()))
    return float(covered / max(hi - lo, 1e-12))


def tica_metrics(samples: np.ndarray, md_series: list[np.ndarray], reference: np.ndarray) -> dict[str, Any] | None:
    """TIC1 of the MD Cα series (each (T, N, 3) nm) and the samples (n, N, 3) on it (module docstring); None when
    the series are too short for a lag (fewer than 10 frame pairs)."""
    from deeptime.decomposition import TICA
    from scipy.spatial.distance import jensenshannon
    from sklearn.decomposition import PCA

    lengths = [len(x) for x in md_series]
    lag = max(1, round(0.01 * float(np.median(lengths)))) if lengths else 1
    series = [kabsch_align(np.asarray(x, dtype=np.float64), reference).reshape(len(x), -1)
              for x in md_series if len(x) > lag]
    if sum(len(x) - lag for x in series) < 10:
        return None
    frames = np.concatenate(series)
    pca = PCA(n_components=min(TICA_PCA_COMPONENTS, len(frames) - 1, frames.shape[1]), random_state=0)
    pca.fit(frames[even_subsample(len(frames), 20000)])
    tica = TICA(lagtime=lag, dim=1).fit([pca.transform(x) for x in series]).fetch_model()
    md_tic = tica.transform(pca.transform(frames))[:, 0]
    sample_tic = tica.transform(pca.transform(kabsch_align(samples, reference).reshape(len(samples), -1)))[:, 0]
    edges = np.linspace(md_tic.min(), md_tic.max(), TICA_BINS + 1)

    def histogram(v: np.ndarray) -> np.ndarray:
        return np.bincount(np.clip(np.searchsorted(edges, v, side="right") - 1, 0, TICA_BINS - 1),
                           minlength=TICA_BINS) / max(1, len(v))

    return {"lag_frames": lag, "md_frames": len(frames),
            "md_range": [float(md_tic.min()), float(md_tic.max())],
            "samples_range": [float(sample_tic.min()), float(sample_tic.max())],
            "coverage": _coverage(sample_tic, md_tic),
            "js_distance": float(jensenshannon(histogram(sample_tic), histogram(md_tic), base=2))}


def fold_metrics(samples: np.ndarray, md: np.ndarray, topology: mdtraj.Topology, *,
                 md_series: list[np.ndarray] | None = None) -> tuple[dict[str, Any], dict]:
    """(metrics, arrays for plots) comparing all-atom ``samples`` (n, atoms, 3) with MD ``md`` frames (m, atoms, 3)
    of ``topology`` (nm); empty when the topology has fewer than 3 Cα. ``md_series``: the MD as time series of
    its Cα only (each (T, n_ca, 3)), for TICA."""
    import mdtraj
    from sklearn.decomposition import PCA


    ca = ca_atoms(topology)
    if len(ca) < 3:
        return {}, {}
    md = np.asarray(md[even_subsample(len(md), MAX_COMPARISON_FRAMES)][:, ca], dtype=np.float64)
    x = np.asarray(samples[:, ca], dtype=np.float64)
    pairs = consecutive_ca(topology)
    means = mean_distances(md, pairs)
    pairs, means = pairs[means <= CHAIN_BREAK_NM], means[means <= CHAIN_BREAK_NM]

    def chain_error(frames: np.ndarray) -> np.ndarray:
        return np.abs(np.linalg.norm(frames[:, pairs[:, 0]] - frames[:, pairs[:, 1]], axis=-1) - means)

    sample_error, md_error = chain_error(x), chain_error(md)
    rg = {name: 10.0 * mdtraj.compute_rg(_trajectory(v)) for name, v in (("samples", x), ("md", md))}
    reference = mean_structure(md)
    aligned = {name: kabsch_align(v, reference).reshape(len(v), -1) for name, v in (("samples", x), ("md", md))}
    pca = PCA(n_components=min(2, len(md) - 1), random_state=0).fit(aligned["md"])
    pcs = {name: pca.transform(v) for name, v in aligned.items()}
    lo, hi = pcs["md"][:, 0].min(), pcs["md"][:, 0].max()
    nearest = 10.0 * nearest_rmsd(x, md)
    own = 10.0 * nearest_rmsd(md, md, leave_self_out=True)
    contacts = {name: contact_frequencies(v) for name, v in (("samples", x), ("md", md))}
    shown = (contacts["samples"] >= 0.05) | (contacts["md"] >= 0.05)
    a, b = contacts["samples"][shown], contacts["md"][shown]
    metrics = {
        "n_ca": len(ca),
        "md_frames_compared": len(md),
        "chain_links": len(pairs),
        "chain_tolerance_angstrom": 10.0 * CHAIN_TOLERANCE_NM,
        "chain_valid_fraction": float(np.mean(np.all(sample_error <= CHAIN_TOLERANCE_NM, axis=1))),
        "md_chain_valid_fraction": float(np.mean(np.all(md_error <= CHAIN_TOLERANCE_NM, axis=1))),
        "ca_ca_max_error_angstrom": float(10.0 * sample_error.max()) if sample_error.size else 0.0,
        "rg_angstrom": {name: {"mean": float(v.mean()), "std": float(v.std())} for name, v in rg.items()},
        "rg_mean_relative_error": float(rg["samples"].mean() / rg["md"].mean() - 1.0),
        "rg_std_relative_error": float(rg["samples"].std() / max(rg["md"].std(), 1e-12) - 1.0),
        "nearest_md_rmsd_angstrom": {"samples_median": float(np.median(nearest)),
                                     "md_own_median": float(np.median(own))},
        "pc1": {"md_range": [float(lo), float(hi)],
                "samples_range": [float(pcs["samples"][:, 0].min()), float(pcs["samples"][:, 0].max())],
                "coverage": _coverage(pcs["samples"][:, 0], pcs["md"][:, 0]),
                "explained_variance_ratio": [float(v) for v in pca.explained_variance_ratio_]},
        "contacts": {"cutoff_angstrom": 10.0 * CONTACT_NM, "pairs": int(shown.sum()),
                     "mean_abs_difference": float(np.mean(np.abs(a - b))) if len(a) else 0.0,
                     "correlation": float(np.corrcoef(a, b)[0, 1]) if len(a) > 1 and a.std() > 0 and b.std() > 0
                     else None},
    }
    tic = tica_metrics(x, md_series, reference) if md_series else None
    if tic is not None:
        metrics["tic1"] = tic
    arrays = {"rg": rg, "pcs": pcs, "nearest": {"samples": nearest, "md": own}}
    return metrics, arrays
