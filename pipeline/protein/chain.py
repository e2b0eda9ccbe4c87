"""The chain a structure must keep: its links, their lengths, and a projection that restores them.

*Links* are the pairs whose distance the chemistry fixes: every bond of the topology, a virtual Cα(i)–Cα(i+1)
link between consecutive residues of one chain that no bond joins (a Cα-only or Cα + side-chain selection keeps
no peptide bond), and every other pair at most three links apart whose distance is *rigid* in the training frames
(standard deviation ≤ :data:`RIGID_STD_NM`): the 1–3 pairs that hold bond angles, and the 1–4 pairs across planar
groups (the peptide bond's ω, aromatic and proline rings). Torsions that move (φ, ψ, side-chain χ) are not rigid and
stay free. This is the distance form of rigid backbone frames. Two residues whose Cα are further apart than
:data:`CHAIN_BREAK_NM` on average over the training frames are not linked: that is a chain break (a missing
segment), not a bond. Separate chains are never linked.

The projection (SHAKE without dynamics, equal masses) moves the two atoms of each link along their connecting
line by half the length error each, one *colour class* of links at a time, so that no atom is moved by two links
at once, and repeats until every link is within ``tolerance`` of its length. The centroid never moves. It is the
nearest structure (in the sense of the iterated per-link least-squares step) that has the training frames' mean
link lengths, so a sample that is almost right is moved by almost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.protein.graph import bond_pairs, local_pairs, virtual_ca_links

if TYPE_CHECKING:
    import mdtraj

CHAIN_BREAK_NM = 0.45
"""Mean Cα–Cα distance above which consecutive residues are a chain break (trans peptides 0.38 nm, cis 0.29)."""
RIGID_STD_NM = 0.01
"""A pair within three links is held at its mean when its training standard deviation is at most this (0.1 Å):
bond angles and planar groups vibrate by ~0.05 Å at 300 K, a free torsion moves its 1–4 pair by ≥ 0.3 Å."""


def distance_moments(frames: np.ndarray, pairs: np.ndarray, *, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard deviation) of each pair's distance (nm) over ``frames`` (F, N, 3), ``chunk`` frames at a time."""
    total, squares = np.zeros(len(pairs)), np.zeros(len(pairs))
    for begin in range(0, len(frames), chunk):
        x = np.asarray(frames[begin:begin + chunk], dtype=np.float64)
        d = np.linalg.norm(x[:, pairs[:, 0]] - x[:, pairs[:, 1]], axis=-1)
        total += d.sum(axis=0)
        squares += (d ** 2).sum(axis=0)
    n = max(1, len(frames))
    mean = total / n
    return mean, np.sqrt(np.maximum(squares / n - mean ** 2, 0.0))


def mean_distances(frames: np.ndarray, pairs: np.ndarray, *, chunk: int = 2048) -> np.ndarray:
    """Mean distance (nm) of each pair over ``frames`` (F, N, 3)."""
    return distance_moments(frames, pairs, chunk=chunk)[0]


@dataclass(frozen=True)
class ChainLinks:
    """The links of a topology and their lengths (the training frames' means, nm)."""

    pairs: np.ndarray  # (k, 2) atom indices
    lengths: np.ndarray  # (k,) nm
    virtual: np.ndarray  # (k,) bool: a virtual Cα–Cα link rather than a bond

    @classmethod
    def fit(cls, topology: mdtraj.Topology, frames: np.ndarray, *, rigid_std_nm: float = RIGID_STD_NM) -> ChainLinks:
        """Links of ``topology`` (module docstring) with their mean lengths over ``frames``; chain breaks dropped."""
        frames = frames[np.linspace(0, len(frames) - 1, min(len(frames), 5000)).astype(np.int64)]
        bonds, virtual = np.unique(bond_pairs(topology), axis=0).reshape(-1, 2), virtual_ca_links(topology)
        virtual = virtual[mean_distances(frames, virtual) <= CHAIN_BREAK_NM]
        direct = np.concatenate([bonds, virtual])
        n = topology.n_atoms
        codes = local_pairs(topology, links=direct)  # the graph without chain breaks
        codes = codes[~np.isin(codes, np.sort(direct, axis=1) @ np.array([n, 1]))]
        near = np.stack([codes // n, codes % n], axis=1)
        rigid = near[distance_moments(frames, near)[1] <= rigid_std_nm]
        pairs = np.concatenate([direct, rigid])
        flags = np.concatenate([np.zeros(len(bonds), bool), np.ones(len(virtual), bool), np.zeros(len(rigid), bool)])
        return cls(pairs=pairs, lengths=mean_distances(frames, pairs), virtual=flags)

    def errors(self, coordinates: np.ndarray) -> np.ndarray:
        """(F, k) signed length errors (nm) of ``coordinates`` (F, N, 3)."""
        x = np.asarray(coordinates, dtype=np.float64)
        return np.linalg.norm(x[:, self.pairs[:, 0]] - x[:, self.pairs[:, 1]], axis=-1) - self.lengths

    def to_json(self) -> dict:
        return {"pairs": self.pairs.tolist(), "lengths": self.lengths.round(7).tolist(),
                "virtual": self.virtual.astype(int).tolist()}

    @classmethod
    def from_json(cls, data: dict) -> ChainLinks:
        return cls(pairs=np.asarray(data["pairs"], dtype=np.int64).reshape(-1, 2),
                   lengths=np.asarray(data["lengths"], dtype=np.float64),
                   virtual=np.asarray(data["virtual"], dtype=bool))


def edge_colouring(pairs: np.ndarray) -> list[np.ndarray]:
    """Indices of ``pairs`` split into classes that share no atom (greedy: each link takes the first class
    neither of its atoms is in yet; a chain needs 2 classes, a protein backbone or side chain at most 5)."""
    used: dict[int, set[int]] = {}
    classes: list[list[int]] = []
    for k, (i, j) in enumerate(np.asarray(pairs).tolist()):
        taken = used.setdefault(i, set()) | used.setdefault(j, set())
        colour = next(c for c in range(len(classes) + 1) if c not in taken)
        if colour == len(classes):
            classes.append([])
        classes[colour].append(k)
        used[i].add(colour)
        used[j].add(colour)
    return [np.asarray(c, dtype=np.int64) for c in classes]


def project_links(coordinates: np.ndarray, links: ChainLinks, *, tolerance_nm: float = 5e-4,
                  max_iterations: int = 50, movable: np.ndarray | None = None) -> np.ndarray:
    """``coordinates`` (F, N, 3) nm with every link brought to its length (within ``tolerance_nm``), by the
    projection of the module docstring; frames are processed together. Rigid pairs' mean lengths need not be
    exactly consistent with each other (means of a vibrating structure): the projection then ends, after
    ``max_iterations``, at a compromise a few thousandths of a nanometre from each. ``movable`` (N,) bool pins
    every other atom: a link to a pinned atom moves only its movable end (by the whole error), a link between
    two pinned atoms is left alone. ``links.lengths`` may also be (F, k): a length per frame."""
    x = np.array(coordinates, dtype=np.float64)
    weight = np.ones(x.shape[-2]) if movable is None else np.asarray(movable, dtype=np.float64)
    keep = weight[links.pairs].sum(axis=1) > 0
    pairs = links.pairs[keep]
    lengths = np.broadcast_to(links.lengths, (len(x), len(links.pairs)))[:, keep]
    if len(pairs) == 0:
        return x.astype(np.float32)
    share = weight[pairs] / weight[pairs].sum(axis=1, keepdims=True)  # (k, 2): how much of the error each end takes
    classes = edge_colouring(pairs)
    for _ in range(max_iterations):
        for members in classes:
            i, j = pairs[members, 0], pairs[members, 1]
            r = x[:, j] - x[:, i]
            d = np.linalg.norm(r, axis=-1, keepdims=True)
            step = (d - lengths[:, members, None]) * r / np.maximum(d, 1e-9)
            x[:, i] += share[members, 0][None, :, None] * step
            x[:, j] -= share[members, 1][None, :, None] * step
        error = np.linalg.norm(x[:, pairs[:, 0]] - x[:, pairs[:, 1]], axis=-1) - lengths
        if np.abs(error).max() <= tolerance_nm:
            break
    return x.astype(np.float32)


@dataclass(frozen=True)
class RingClosures:
    """The bonds a tree of internal coordinates (a Z-matrix) leaves open, and how decoding closes them.

    A ring closure bond ``i–j`` (aromatic or proline ring, disulfide, cyclic backbone) has no coordinate of its
    own, so errors anywhere along the ring open it. Closing it: ``pairs`` are the bonds and 1–3 (angle) pairs that
    touch a ``movable`` atom (the ring's atoms and the atoms bonded to them); the ``closing`` ones (the closure
    bonds, and the angle pairs across them, which the tree does not hold either) are brought to their training
    means ``lengths``; every other pair is held at the length it has in the decoded structure. The projection
    (:func:`project_links`, atoms outside ``movable`` pinned) then changes only what the closure needs.
    """

    pairs: np.ndarray  # (k, 2)
    closing: np.ndarray  # (k,) bool
    lengths: np.ndarray  # (k,) nm: training means (used where closing)
    movable: np.ndarray  # (N,) bool

    @classmethod
    def fit(cls, topology: mdtraj.Topology, frames: np.ndarray, *, closures: set[tuple[int, int]],
            movable: np.ndarray) -> RingClosures:
        n = topology.n_atoms
        bonds = np.unique(bond_pairs(topology), axis=0).reshape(-1, 2)
        codes = local_pairs(topology, max_separation=2, links=bonds)
        pairs = np.stack([codes // n, codes % n], axis=1)
        pairs = pairs[movable[pairs].any(axis=1)]
        neighbours: list[set[int]] = [set() for _ in range(n)]
        for a, b in bonds.tolist():
            neighbours[a].add(b)
            neighbours[b].add(a)
        across = set(closures)
        for i, j in closures:  # the angle pairs whose middle bond is the closure
            across |= {tuple(sorted((a, j))) for a in neighbours[i] - {j}}
            across |= {tuple(sorted((i, b))) for b in neighbours[j] - {i}}
        closing = np.array([tuple(p) in across for p in pairs.tolist()], dtype=bool)
        return cls(pairs=pairs, closing=closing, lengths=mean_distances(frames, pairs),
                   movable=np.asarray(movable, dtype=bool))

    def close(self, coordinates: np.ndarray, *, max_iterations: int = 200, tolerance_nm: float = 1e-4) -> np.ndarray:
        """(F, N, 3) nm with every ring closed (class docstring)."""
        x = np.asarray(coordinates, dtype=np.float64)
        current = np.linalg.norm(x[:, self.pairs[:, 0]] - x[:, self.pairs[:, 1]], axis=-1)
        target = np.where(self.closing, self.lengths, current)
        links = ChainLinks(pairs=self.pairs, lengths=target, virtual=np.zeros(len(self.pairs), bool))
        return project_links(x, links, movable=self.movable, max_iterations=max_iterations, tolerance_nm=tolerance_nm)

    def to_json(self) -> dict:
        return {"pairs": self.pairs.tolist(), "closing": self.closing.astype(int).tolist(),
                "lengths": self.lengths.round(7).tolist(), "movable": self.movable.astype(int).tolist()}

    @classmethod
    def from_json(cls, data: dict) -> RingClosures:
        return cls(pairs=np.asarray(data["pairs"], dtype=np.int64).reshape(-1, 2),
                   closing=np.asarray(data["closing"], dtype=bool),
                   lengths=np.asarray(data["lengths"], dtype=np.float64),
                   movable=np.asarray(data["movable"], dtype=bool))
