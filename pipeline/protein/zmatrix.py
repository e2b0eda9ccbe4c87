"""Internal coordinates (a Z-matrix built from the bond graph) and NeRF reconstruction.

Every atom but the first is placed from atoms placed before it: its bond partner ``p`` (bond length
``|x_i − x_p|``), an angle atom ``a`` bonded to ``p`` (angle ``a−p−i``) and a dihedral atom ``d`` (dihedral
``d−a−p−i``). The placement order is a breadth-first walk of the bond graph from its centre (heavy
atoms first), so:

- ``a`` is ``p``'s own bond partner (its parent in the walk), or, when ``p`` is the root, the first
  atom bonded to it;
- ``d`` is an atom bonded to ``p`` and placed earlier (a sibling of ``i``) when there is one — the
  dihedral is then a nearly constant branch offset (≈ ±120° for sp3, 180° for sp2) — and otherwise an
  atom bonded to ``a`` (a proper torsion such as φ or ψ of a peptide, which carries the conformation).

The first atom has no coordinates, the second only a bond, the third a bond and an angle: ``3N − 6``
numbers, invariant to rotations and translations. NeRF (Parsons et al. 2005) rebuilds Cartesian
coordinates from them in a canonical frame (first atom at the origin, second on +x, third in the xy
plane): with ``b̂ = (p − a)/|p − a|`` and ``n̂ = (a − d) × b̂ / |…|``,
``x_i = p + r(−cos θ b̂ + sin θ cos φ (n̂ × b̂) + sin θ sin φ n̂)``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.protein.geometry import dihedral

if TYPE_CHECKING:
    import mdtraj


@dataclass(frozen=True)
class ZMatrix:
    """Placement order and reference atoms; rows are in placement order, ``-1`` where a reference is absent.

    ``order[k]`` is the k-th placed atom; ``bond[k]``, ``angle[k]``, ``torsion[k]`` its reference atoms
    (atom indices of the topology). Only rows 1… have a bond, 2… an angle, 3… a dihedral.
    """

    order: np.ndarray
    bond: np.ndarray
    angle: np.ndarray
    torsion: np.ndarray
    virtual: np.ndarray | None = None  # (N,) bool per row: its bond is a virtual link between two molecules

    @property
    def n_atoms(self) -> int:
        return int(self.order.size)

    @property
    def n_features(self) -> int:
        """``3N − 6`` (bonds, angles, dihedrals) for ``N ≥ 3``."""
        return max(self.n_atoms - 1, 0) + max(self.n_atoms - 2, 0) + max(self.n_atoms - 3, 0)

    @classmethod
    def from_bonds(cls, n_atoms: int, bonds: list[tuple[int, int]], *, heavy: np.ndarray | None = None,
                   virtual: list[tuple[int, int]] = ()) -> ZMatrix:
        """The Z-matrix of a connected molecule with ``n_atoms`` atoms and ``bonds`` (index pairs).

        ``heavy`` (bool per atom) chooses the root among heavy atoms and walks heavy neighbours first.
        ``virtual`` pairs are walked like bonds and flagged in :attr:`virtual` (links that join molecules).
        Raises ValueError when the graph is not one connected molecule of at least three atoms.
        """
        bonds = [*bonds, *virtual]
        if n_atoms < 3:
            raise ValueError(f"internal coordinates need at least 3 atoms, got {n_atoms}")
        heavy = np.ones(n_atoms, dtype=bool) if heavy is None else np.asarray(heavy, dtype=bool)
        neighbours: list[list[int]] = [[] for _ in range(n_atoms)]
        for i, j in bonds:
            if i != j and j not in neighbours[i]:
                neighbours[i].append(int(j))
                neighbours[j].append(int(i))
        for row in neighbours:
            row.sort(key=lambda k: (not heavy[k], k))
        root = _graph_centre(neighbours, heavy)
        parent = np.full(n_atoms, -1)
        order = [root]
        seen = np.zeros(n_atoms, dtype=bool)
        seen[root] = True
        queue = deque([root])
        while queue:
            atom = queue.popleft()
            for nb in neighbours[atom]:
                if not seen[nb]:
                    seen[nb] = True
                    parent[nb] = atom
                    order.append(nb)
                    queue.append(nb)
        if len(order) != n_atoms:
            raise ValueError(
                f"the bond graph is not one connected molecule ({n_atoms - len(order)} of {n_atoms} atoms are "
                "not bonded to the rest); select one molecule"
            )
        rank = np.empty(n_atoms, dtype=np.int64)
        rank[np.asarray(order)] = np.arange(n_atoms)
        bond = np.full(n_atoms, -1)
        angle = np.full(n_atoms, -1)
        torsion = np.full(n_atoms, -1)

        def first_placed(atom: int, before: int, exclude: tuple[int, ...]) -> int:
            candidates = [k for k in neighbours[atom] if rank[k] < before and k not in exclude]
            return min(candidates, key=lambda k: rank[k]) if candidates else -1

        for k, atom in enumerate(order[1:], start=1):
            p = int(parent[atom])
            bond[k] = p
            a = int(parent[p]) if parent[p] >= 0 else first_placed(p, k, (atom,))
            if a < 0:
                continue
            angle[k] = a
            d = first_placed(p, k, (atom, a))
            if d < 0:
                d = first_placed(a, k, (p,))
            torsion[k] = d
        joins = {tuple(sorted(pair)) for pair in virtual}
        flags = np.array([k > 0 and tuple(sorted((int(order[k]), int(bond[k])))) in joins for k in range(n_atoms)])
        return cls(order=np.asarray(order, dtype=np.int64), bond=bond, angle=angle, torsion=torsion,
                   virtual=flags if flags.any() else None)

    @classmethod
    def from_topology(cls, topology: mdtraj.Topology, *, reference: np.ndarray | None = None) -> ZMatrix:
        """The Z-matrix of the topology's bond graph. Several molecules (chains no bond joins, a ligand) are
        joined by :func:`joining_links` of the ``reference`` structure (N, 3); without one they are refused."""
        heavy = np.array([a.element is None or a.element.symbol != "H" for a in topology.atoms])
        bonds = [(b.atom1.index, b.atom2.index) for b in topology.bonds]
        joins = joining_links(topology.n_atoms, bonds, reference, heavy=heavy) if reference is not None else []
        return cls.from_bonds(topology.n_atoms, bonds, heavy=heavy, virtual=joins)

    @property
    def virtual_rows(self) -> np.ndarray:
        """Rows (1 … N−1) whose bond is a virtual link between molecules."""
        return np.zeros(0, np.int64) if self.virtual is None else np.flatnonzero(self.virtual)

    def closures(self, bonds: np.ndarray) -> set[tuple[int, int]]:
        """The ``bonds`` (k, 2) the placement does not walk, as sorted pairs: each closes a ring (aromatic or
        proline ring, disulfide, cyclic peptide). Virtual links are not bonds and never count."""
        rows = set(self.virtual_rows.tolist())
        walked = {tuple(sorted((int(self.order[k]), int(self.bond[k])))) for k in range(1, self.n_atoms)
                  if k not in rows}
        return {tuple(sorted(pair)) for pair in np.asarray(bonds).tolist()} - walked

    def _parents(self) -> np.ndarray:
        """(N,) each atom's bond partner in the placement tree, ``-1`` for the root."""
        parent = np.full(self.n_atoms, -1)
        parent[self.order[1:]] = self.bond[1:]
        return parent

    def rings(self, closures: set[tuple[int, int]]) -> list[np.ndarray]:
        """The atoms of the ring each closure bond ``(i, j)`` outside the tree closes: the tree path from ``i`` to
        ``j``."""
        parent = self._parents()

        def up(atom: int) -> list[int]:
            path = [atom]
            while parent[path[-1]] >= 0:
                path.append(int(parent[path[-1]]))
            return path

        found = []
        for i, j in sorted(closures):
            up_i, up_j = up(i), up(j)
            common = set(up_i) & set(up_j)
            top = next(a for a in up_i if a in common)
            found.append(np.array([a for a in up_i if a not in common] + [top]
                                  + [a for a in up_j if a not in common], dtype=np.int64))
        return found

    def ring_neighbourhood(self, closures: set[tuple[int, int]]) -> np.ndarray:
        """(N,) bool: the atoms of every ring :meth:`rings` and the atoms bonded to them in the tree."""
        parent = self._parents()
        ring = np.zeros(self.n_atoms, dtype=bool)
        for atoms in self.rings(closures):
            ring[atoms] = True
        near = ring.copy()
        near[parent[ring & (parent >= 0)]] = True  # parents of ring atoms
        near[ring[parent.clip(0)] & (parent >= 0)] = True  # children of ring atoms
        return near

    def to_json(self) -> dict:
        data = {k: getattr(self, k).tolist() for k in ("order", "bond", "angle", "torsion")}
        return data | ({"virtual": self.virtual.astype(int).tolist()} if self.virtual is not None else {})

    @classmethod
    def from_json(cls, data: dict) -> ZMatrix:
        virtual = np.asarray(data["virtual"], dtype=bool) if "virtual" in data else None
        return cls(**{k: np.asarray(data[k], dtype=np.int64) for k in ("order", "bond", "angle", "torsion")},
                   virtual=virtual)

    # -- conversions ---------------------------------------------------------------------------------

    def internal(self, coordinates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(bonds (…, N−1) nm, angles (…, N−2) rad, dihedrals (…, N−3) rad in [−π, π])`` of (…, N, 3)."""
        x = np.asarray(coordinates, dtype=np.float64)
        o, b, a, t = self.order, self.bond, self.angle, self.torsion
        lengths = np.linalg.norm(x[..., o[1:], :] - x[..., b[1:], :], axis=-1)
        u = x[..., o[2:], :] - x[..., b[2:], :]
        v = x[..., a[2:], :] - x[..., b[2:], :]
        cos = np.sum(u * v, axis=-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
        angles = np.arccos(np.clip(cos, -1.0, 1.0))
        dihedrals = dihedral(x[..., t[3:], :], x[..., a[3:], :], x[..., b[3:], :], x[..., o[3:], :])
        return lengths, angles, dihedrals

    def cartesian(self, bonds: np.ndarray, angles: np.ndarray, dihedrals: np.ndarray) -> np.ndarray:
        """NeRF: (…, N, 3) coordinates in the canonical frame from internal coordinates (see module doc)."""
        bonds, angles, dihedrals = (np.asarray(v, dtype=np.float64) for v in (bonds, angles, dihedrals))
        batch = bonds.shape[:-1]
        x = np.zeros(batch + (self.n_atoms, 3))
        o = self.order
        x[..., o[1], 0] = bonds[..., 0]
        # third atom: in the xy plane, at angle θ from the direction p → a
        p, a = x[..., self.bond[2], :], x[..., self.angle[2], :]
        axis = _unit(a - p)
        perp = np.zeros_like(axis)
        perp[..., 0], perp[..., 1] = -axis[..., 1], axis[..., 0]
        theta, r = angles[..., 0], bonds[..., 1]
        x[..., o[2], :] = p + r[..., None] * (np.cos(theta)[..., None] * axis + np.sin(theta)[..., None] * perp)
        for k in range(3, self.n_atoms):
            d, a, p = (x[..., self.torsion[k], :], x[..., self.angle[k], :], x[..., self.bond[k], :])
            bc = _unit(p - a)
            n = _unit(np.cross(a - d, bc))
            m = np.cross(n, bc)
            r, theta, phi = bonds[..., k - 1, None], angles[..., k - 2, None], dihedrals[..., k - 3, None]
            x[..., o[k], :] = p + r * (
                -np.cos(theta) * bc + np.sin(theta) * np.cos(phi) * m + np.sin(theta) * np.sin(phi) * n
            )
        return x


def joining_links(n_atoms: int, bonds: list[tuple[int, int]], reference: np.ndarray, *,
                  heavy: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Virtual links that join the bond graph's molecules into one tree: starting from the largest molecule, the
    closest pair of (heavy) atoms in ``reference`` (N, 3) between the molecules joined so far and any other, until
    every molecule is joined. Their length, angle and dihedral then carry the molecules' relative placement, and
    the link at the interface keeps the lever arm short. Empty for one molecule."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pairs = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n_atoms, n_atoms))
    count, label = connected_components(graph, directed=False)
    if count == 1:
        return []
    heavy = np.ones(n_atoms, dtype=bool) if heavy is None else np.asarray(heavy, dtype=bool)
    members = [np.flatnonzero(label == c) for c in range(count)]
    members = [m[heavy[m]] if heavy[m].any() else m for m in members]
    joined = {int(np.argmax([len(np.flatnonzero(label == c)) for c in range(count)]))}
    links = []
    while len(joined) < count:
        inside = np.concatenate([members[c] for c in sorted(joined)])
        tree = cKDTree(reference[inside])
        best = None
        for c in range(count):
            if c in joined:
                continue
            distance, nearest = tree.query(reference[members[c]])
            k = int(np.argmin(distance))
            if best is None or distance[k] < best[0]:
                best = (float(distance[k]), int(inside[nearest[k]]), int(members[c][k]), c)
        links.append((best[1], best[2]))
        joined.add(best[3])
    return links


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _graph_centre(neighbours: list[list[int]], heavy: np.ndarray) -> int:
    """The heavy atom with the smallest eccentricity in the heavy-atom graph (lowest index on ties)."""
    candidates = [k for k in range(len(neighbours)) if heavy[k]] or list(range(len(neighbours)))
    allowed = set(candidates)
    best, best_ecc = candidates[0], np.inf
    for start in candidates:
        depth = {start: 0}
        queue = deque([start])
        while queue:
            atom = queue.popleft()
            for nb in neighbours[atom]:
                if nb in allowed and nb not in depth:
                    depth[nb] = depth[atom] + 1
                    queue.append(nb)
        ecc = max(depth.values()) if len(depth) == len(allowed) else np.inf
        if ecc < best_ecc:
            best, best_ecc = start, ecc
    return best
