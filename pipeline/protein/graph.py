"""The bond graph of a topology: bonds, virtual Cα–Cα links where no bond joins consecutive residues, and the
atom pairs a few links apart (which no clash test counts and the chain projection may hold rigid).

The lowest layer of :mod:`pipeline.protein`: :mod:`~pipeline.protein.chain`, :mod:`~pipeline.protein.metrics` and
the featurisers all read the graph from here.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import mdtraj


def bond_pairs(topology: mdtraj.Topology) -> np.ndarray:
    """(n_bonds, 2) atom indices of the topology's bonds, each sorted."""
    return np.array(
        sorted(tuple(sorted((b.atom1.index, b.atom2.index))) for b in topology.bonds), dtype=np.int64
    ).reshape(-1, 2)


def virtual_ca_links(topology: mdtraj.Topology) -> np.ndarray:
    """(k, 2) Cα pairs of consecutive residues of one chain with no bond between the two residues."""
    joined = {tuple(sorted((b.atom1.residue.index, b.atom2.residue.index))) for b in topology.bonds}
    links = []
    for chain in topology.chains:
        residues = list(chain.residues)
        for first, second in pairwise(residues):
            if (first.index, second.index) in joined:
                continue
            ca = [next((a.index for a in r.atoms if a.name == "CA"), None) for r in (first, second)]
            if None not in ca:
                links.append(ca)
    return np.array(links, dtype=np.int64).reshape(-1, 2)


def local_pairs(topology: mdtraj.Topology, *, max_separation: int = 3, links: np.ndarray | None = None) -> np.ndarray:
    """Sorted codes ``i·n + j`` (i < j) of the atom pairs at most ``max_separation`` links apart: O(atoms) of them
    (a breadth-first search of depth ``max_separation`` from every atom). ``links`` (k, 2) are the graph's edges;
    by default the bonds plus the virtual Cα–Cα links of residues no bond joins
    (:func:`virtual_ca_links`)."""
    n = topology.n_atoms
    if links is None:
        links = np.concatenate([bond_pairs(topology), virtual_ca_links(topology)])
    adjacency: list[list[int]] = [[] for _ in range(n)]
    for i, j in links:
        adjacency[i].append(int(j))
        adjacency[j].append(int(i))
    codes: list[int] = []
    for src in range(n):
        seen, frontier = {src}, [src]
        for _ in range(max_separation):
            frontier = [b for a in frontier for b in adjacency[a] if b not in seen]
            seen.update(frontier)
        codes.extend(src * n + b for b in seen if b > src)
    return np.unique(np.asarray(codes, dtype=np.int64))


def nonlocal_pairs(topology: mdtraj.Topology, *, min_separation: int = 4) -> np.ndarray:
    """Atom pairs at least ``min_separation`` links apart (or unconnected), (k, 2). All pairs: for small
    molecules and tests; :func:`clash_free` never lists them."""
    n = topology.n_atoms
    i, j = np.triu_indices(n, 1)
    keep = ~np.isin(i * n + j, local_pairs(topology, max_separation=min_separation - 1))
    return np.stack([i[keep], j[keep]], axis=1)
