"""Conformations as vectors for flow matching: two featurisations with one interface.

``internal`` (the default): bond lengths, bond angles and dihedrals of a Z-matrix built from the bond
graph (:mod:`pipeline.protein.zmatrix`), ``3N − 6`` numbers that are invariant to rotations and
translations, so there is no centre-of-mass or rotation degree of freedom to model at all. Each dihedral
is unwrapped onto ``[c, c + 2π)`` with the cut ``c`` placed in its emptiest stretch of the training
data, so a Gaussian prior never has to bridge the ±π seam inside a populated basin. Every feature is
standardised, ``z = (q − μ) / σ``, with the prior ``N(0, I)`` in ``z``. Bond lengths are modelled directly
(constrained X−H bonds are constants), which is what makes samples chemically valid. Decoding rebuilds
Cartesian coordinates by NeRF and superposes them on the mean training structure.
With ``bonds="fixed"`` (the training default) the bond lengths are not features: every bond is held at
its mean training length (as SHAKE holds X−H bonds in MD, and as structure generators build idealised
geometry), and the model learns the ``2N − 5`` angles and dihedrals. Samples then lack the thermal bond vibration (σ ≈ 0.03 Å at
300 K), which moves no conformational statistic but keeps every bond near its force-field length.

``modes`` (the default above :data:`AUTO_INTERNAL_MAX_RESIDUES` residues, for atom sets with no connected bond
graph such as a Cα trace, and for large rings such as disulfide loops): aligned Cartesian coordinates in the
whitened basis of the training frames' principal modes, decoded through the chain projection of
:mod:`pipeline.protein.chain` (see :class:`PrincipalModes`).

``cartesian``: every frame is Kabsch-aligned (all atoms) to the mean structure (two passes), coordinates
are standardised per component around it and flattened to ``3N``; the prior is an anisotropic Gaussian
around the mean structure in the reference frame. Measured worse: bond lengths come out as the
difference of two noisy positions (see docs/concepts/molecules.md).

Time-lagged pairs ``(x(t), x(t+τ))`` are taken within each trajectory only (never across boundaries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from pipeline.protein.chain import ChainLinks, RingClosures, project_links
from pipeline.protein.geometry import even_subsample, kabsch_align, mean_structure
from pipeline.protein.graph import bond_pairs
from pipeline.protein.store import StructureStore
from pipeline.protein.zmatrix import ZMatrix

if TYPE_CHECKING:
    import mdtraj

Representation = Literal["auto", "internal", "modes", "cartesian"]
ConcreteRepresentation = Literal["internal", "modes", "cartesian"]

AUTO_INTERNAL_MAX_RESIDUES = 10
"""``auto`` takes internal coordinates up to this many residues (peptides: exact local geometry, and the lever arm
of independent dihedrals is short) and principal modes above it (a fold, which dihedral errors would unravel).
Measured on real MD of adenylate kinase's first 10 / 20 / 30 residues (heavy atoms, 3 minutes of training each):
clash-free samples 99.6 / 20.9 / 1.7 % with internal coordinates against 98.7 / 96.8 / 95.0 % with modes."""
AUTO_INTERNAL_MAX_RING = 10
"""``auto`` takes internal coordinates only while every ring is at most this many atoms (proline 5, aromatic 6,
indole 9): decoding closes small rings exactly, but a disulfide loop or a cyclic backbone closes only partly
(a 28-residue peptide with three disulfides, features off by 0.3 standard deviations: 10 Å open, 4.4 Å closed)."""
MAX_MODES = 768
"""At most this many principal modes are features (the rest, of the least variance, are left at the mean and the
chain projection restores their bond lengths); keeps the checkpoint's JSON small for all-atom proteins."""
MODE_FIT_VALUES = 60_000_000
"""The modes are fitted on at most this many coordinate values (evenly spaced frames): 240 MB of float32."""
BondModel = Literal["learned", "fixed"]


class Featuriser(Protocol):
    """Frames (F, N, 3) nm ↔ standardised feature vectors (F, D) float32."""

    kind: str

    @property
    def dim(self) -> int: ...

    def encode(self, frames: np.ndarray) -> np.ndarray: ...

    def decode(self, z: np.ndarray) -> np.ndarray: ...

    def to_json(self) -> dict: ...


@dataclass(frozen=True)
class Standardiser:
    """``cartesian``: reference frame and per-component scaling of an atom set."""

    reference: np.ndarray  # (N, 3) nm: the frame everything is aligned to (the mean structure)
    mean: np.ndarray  # (N, 3)
    std: np.ndarray  # (N, 3)
    kind = "cartesian"

    @classmethod
    def fit(cls, frames: np.ndarray) -> Standardiser:
        """Fit the reference (two alignment passes) and the scaling on ``frames`` (F, N, 3)."""
        reference = mean_structure(frames)
        aligned = kabsch_align(frames, reference)
        std = np.maximum(aligned.std(axis=0), 1e-4)
        return cls(reference=reference, mean=aligned.mean(axis=0).astype(np.float64), std=std.astype(np.float64))

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(…, N, 3) nm, any pose → (…, 3N) standardised float32 (aligned to the reference first)."""
        x = np.asarray(frames, dtype=np.float64)
        aligned = kabsch_align(x.reshape(-1, *x.shape[-2:]), self.reference).reshape(x.shape)
        z = (aligned - self.mean) / self.std
        return z.reshape(*z.shape[:-2], -1).astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(…, 3N) → (…, N, 3) nm in the reference frame."""
        x = np.asarray(z, dtype=np.float64).reshape(*np.shape(z)[:-1], -1, 3)
        return (x * self.std + self.mean).astype(np.float32)

    def to_json(self) -> dict:
        return {"kind": self.kind} | {
            k: np.asarray(getattr(self, k)).round(7).tolist() for k in ("reference", "mean", "std")
        }

    @classmethod
    def from_json(cls, data: dict) -> Standardiser:
        return cls(**{k: np.asarray(data[k], dtype=np.float64) for k in ("reference", "mean", "std")})


@dataclass(frozen=True)
class PrincipalModes:
    """``modes``: aligned coordinates in the whitened basis of the training frames' principal modes.

    Frames are Kabsch-aligned to the mean structure ``x̄`` (two passes). With the principal components of the centred
    training frames (scikit-learn's PCA), mode ``k`` has direction ``v_k`` (unit, 3N) and standard deviation ``σ_k``;
    the features are ``z_k = v_kᵀ(x − x̄) / σ_k`` for the ``K`` modes with ``σ_k`` above 1e-5 nm (``K`` ≤ frames − 1,
    ≤ :data:`MAX_MODES`). The prior ``N(0, I)`` in ``z`` is then the training frames' own Gaussian, and a model error
    ``δ`` in ``z`` moves the structure by ``Σ σ_k δ_k v_k``: hardly along the stiff modes (bond stretching) and
    freely along the soft ones (domain motions). Per-atom standardisation (``cartesian``) spends the same error on
    every direction, which is what breaks the chain. Decoding ends with :func:`pipeline.protein.chain.project_links`
    onto the training frames' mean link lengths (every bond, and the virtual Cα–Cα links of a Cα trace).
    """

    reference: np.ndarray  # (N, 3) nm: the frame everything is aligned to (the mean structure)
    basis: np.ndarray  # (K, 3N) orthonormal rows v_k
    scale: np.ndarray  # (K,) nm: σ_k
    links: ChainLinks
    kind = "modes"

    @classmethod
    def fit(cls, frames: np.ndarray, topology: mdtraj.Topology) -> PrincipalModes:
        from sklearn.decomposition import PCA

        reference = mean_structure(frames)
        fit = frames[even_subsample(len(frames), max(2, MODE_FIT_VALUES // max(1, frames[0].size)))]
        flat = (kabsch_align(fit, reference) - reference).reshape(len(fit), -1)
        pca = PCA(n_components=min(MAX_MODES, len(fit) - 1, flat.shape[1]), svd_solver="auto", random_state=0)
        pca.fit(flat)
        scale = np.sqrt(pca.explained_variance_)
        keep = scale > 1e-5
        # PCA centres on the aligned frames' mean, which is the reference up to the second alignment pass
        reference = reference + pca.mean_.reshape(reference.shape)
        return cls(reference=reference, basis=pca.components_[keep].astype(np.float64), scale=scale[keep],
                   links=ChainLinks.fit(topology, frames))

    @property
    def dim(self) -> int:
        return int(self.scale.size)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(…, N, 3) nm, any pose → (…, K) float32."""
        x = np.asarray(frames, dtype=np.float64)
        aligned = kabsch_align(x.reshape(-1, *x.shape[-2:]), self.reference) - self.reference
        z = aligned.reshape(len(aligned), -1) @ self.basis.T / self.scale
        return z.reshape(*x.shape[:-2], -1).astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(…, K) → (…, N, 3) nm in the reference frame, every link at its training length."""
        z = np.asarray(z, dtype=np.float64)
        flat = (z.reshape(-1, z.shape[-1]) * self.scale) @ self.basis
        x = project_links(flat.reshape(-1, *self.reference.shape) + self.reference, self.links)
        return x.reshape(*z.shape[:-1], *self.reference.shape)

    def to_json(self) -> dict:
        return {"kind": self.kind, "links": self.links.to_json(), "reference": self.reference.round(7).tolist(),
                "basis": self.basis.astype(np.float32).tolist(), "scale": self.scale.round(9).tolist()}

    @classmethod
    def from_json(cls, data: dict) -> PrincipalModes:
        return cls(reference=np.asarray(data["reference"], dtype=np.float64),
                   basis=np.asarray(data["basis"], dtype=np.float64),
                   scale=np.asarray(data["scale"], dtype=np.float64), links=ChainLinks.from_json(data["links"]))


# floors of σ: constrained bonds have σ ≈ 0, which must not blow up z
_STD_FLOOR = {"bond": 1e-4, "angle": 1e-3, "dihedral": 1e-3}


def dihedral_cuts(dihedrals: np.ndarray, *, bins: int = 72) -> np.ndarray:
    """Per column of ``dihedrals`` (F, K) rad: the centre of the longest circular run of its least
    populated histogram bins — where to cut the circle so populated basins stay in one piece."""
    width = 2 * np.pi / bins
    cuts = np.full(dihedrals.shape[1], np.pi)
    for k in range(dihedrals.shape[1]):
        counts, _ = np.histogram(dihedrals[:, k], bins=bins, range=(-np.pi, np.pi))
        emptiest = counts == counts.min()
        if emptiest.all():
            continue
        shift = int(np.argmin(emptiest))  # a populated bin: runs no longer wrap around the end
        rolled = np.roll(emptiest, -shift)
        best_start, best_len, start = 0, 0, None
        for i, flag in enumerate(np.append(rolled, False)):
            if flag and start is None:
                start = i
            elif not flag and start is not None:
                if i - start > best_len:
                    best_start, best_len = start, i - start
                start = None
        middle = (best_start + (best_len - 1) / 2 + shift) % bins
        cuts[k] = -np.pi + (middle + 0.5) * width
    return cuts


@dataclass(frozen=True)
class InternalCoordinates:
    """``internal``: Z-matrix features ``[bonds, angles, dihedrals unwrapped at their cuts]``, standardised;
    with ``bonds="fixed"`` only the virtual links' lengths stay among the features (``fixed_bonds`` holds the rest).

    Several molecules (chains no bond joins) are joined by virtual links at their closest contact
    (:func:`pipeline.protein.zmatrix.joining_links`), whose lengths are always learned: they carry the
    molecules' relative placement. Bonds the Z-matrix tree does not walk (ring closures of aromatic and proline
    rings, disulfides, a cyclic backbone) get no coordinate of their own, so an error anywhere along the ring
    opens them; when there are any, decoding ends by closing them (:class:`pipeline.protein.chain.RingClosures`:
    the closure bonds and their angles at the training means, every other local distance as decoded, only the
    ring atoms and their neighbours moved).
    """

    zmatrix: ZMatrix
    cuts: np.ndarray  # (N − 3,) rad
    mean: np.ndarray  # (3N − 6,), or (2N − 5 + virtual links,) with fixed bonds
    std: np.ndarray  # same
    reference: np.ndarray  # (N, 3) nm: decoded structures are superposed on it
    fixed_bonds: np.ndarray | None = None  # (N − 1,) nm: the Z-matrix bonds' lengths, when not learned
    rings: RingClosures | None = None  # the bonds the tree leaves open, when the topology has any
    kind = "internal"

    @classmethod
    def fit(cls, frames: np.ndarray, topology: mdtraj.Topology, *, bonds: BondModel = "learned") -> InternalCoordinates:
        reference = mean_structure(frames)
        zmatrix = ZMatrix.from_topology(topology, reference=reference)
        lengths, angles, dihedrals = zmatrix.internal(frames)
        cuts = dihedral_cuts(dihedrals)
        fixed = lengths.mean(axis=0) if bonds == "fixed" else None
        learned = _learned_bonds(zmatrix, fixed)
        q = np.concatenate([lengths[..., learned], angles, _unwrap(dihedrals, cuts)], axis=-1)
        floors = np.concatenate([np.full(learned.size, _STD_FLOOR["bond"]),
                                 np.full(angles.shape[-1], _STD_FLOOR["angle"]),
                                 np.full(dihedrals.shape[-1], _STD_FLOOR["dihedral"])])
        closures = zmatrix.closures(bond_pairs(topology))
        rings = RingClosures.fit(topology, frames, closures=closures,
                                 movable=zmatrix.ring_neighbourhood(closures)) if closures else None
        return cls(zmatrix=zmatrix, cuts=cuts, mean=q.mean(axis=0), std=np.maximum(q.std(axis=0), floors),
                   reference=reference, fixed_bonds=fixed, rings=rings)

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(…, N, 3) nm → (…, D) standardised float32 (D = 3N − 6, or 2N − 5 + virtual links with fixed bonds)."""
        bonds, angles, dihedrals = self.zmatrix.internal(frames)
        learned = _learned_bonds(self.zmatrix, self.fixed_bonds)
        q = np.concatenate([bonds[..., learned], angles, _unwrap(dihedrals, self.cuts)], axis=-1)
        return ((q - self.mean) / self.std).astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(…, D) → (…, N, 3) nm, superposed on the mean training structure, ring closures restored."""
        q = np.asarray(z, dtype=np.float64) * self.std + self.mean
        n = self.zmatrix.n_atoms
        learned = _learned_bonds(self.zmatrix, self.fixed_bonds)
        if self.fixed_bonds is None:
            bonds = q[..., : n - 1]
        else:
            bonds = np.array(np.broadcast_to(self.fixed_bonds, q.shape[:-1] + (n - 1,)))
            bonds[..., learned] = q[..., : learned.size]
        rest = q[..., learned.size:]
        x = self.zmatrix.cartesian(bonds, rest[..., : n - 2], rest[..., n - 2:])
        flat = x.reshape(-1, n, 3)
        if self.rings is not None:
            flat = self.rings.close(flat)
        return kabsch_align(flat, self.reference).reshape(x.shape).astype(np.float32)

    def to_json(self) -> dict:
        arrays = ("cuts", "mean", "std", "reference") + (("fixed_bonds",) if self.fixed_bonds is not None else ())
        return {"kind": self.kind, "zmatrix": self.zmatrix.to_json()} | {
            k: np.asarray(getattr(self, k)).round(9).tolist() for k in arrays
        } | ({"rings": self.rings.to_json()} if self.rings is not None else {})

    @classmethod
    def from_json(cls, data: dict) -> InternalCoordinates:
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("cuts", "mean", "std", "reference", "fixed_bonds")
                  if k in data}
        rings = RingClosures.from_json(data["rings"]) if "rings" in data else None
        return cls(zmatrix=ZMatrix.from_json(data["zmatrix"]), rings=rings, **arrays)


def _learned_bonds(zmatrix: ZMatrix, fixed_bonds: np.ndarray | None) -> np.ndarray:
    """Indices (into the N − 1 bond columns) of the bond lengths among the features: all of them, or with fixed
    bonds only the virtual links between molecules."""
    if fixed_bonds is None:
        return np.arange(zmatrix.n_atoms - 1)
    return zmatrix.virtual_rows - 1


def _unwrap(dihedrals: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Each dihedral moved into ``[cut, cut + 2π)``."""
    return cuts + np.mod(dihedrals - cuts, 2 * np.pi)


def resolve_bond_model(representation: Representation, bonds: BondModel | None) -> BondModel:
    """``bonds`` as given, else ``fixed`` for internal and ``learned`` otherwise; ValueError for fixed bonds with
    a representation that cannot be internal (configs validate with it; ``auto`` is checked once resolved)."""
    if bonds == "fixed" and representation not in ("internal", "auto"):
        raise ValueError(f"bonds: fixed needs representation: internal ({representation} coordinates have no bond "
                         "lengths to hold)")
    return bonds or ("fixed" if representation in ("internal", "auto") else "learned")


def resolve_representation(representation: Representation, topology: mdtraj.Topology) -> ConcreteRepresentation:
    """``auto``: ``internal`` for a molecule of at most :data:`AUTO_INTERNAL_MAX_RESIDUES` residues with one connected
    bond graph and no ring longer than :data:`AUTO_INTERNAL_MAX_RING` atoms, else ``modes``; any other choice as
    given."""
    if representation != "auto":
        return representation
    if topology.n_residues > AUTO_INTERNAL_MAX_RESIDUES:
        return "modes"
    try:
        zmatrix = ZMatrix.from_topology(topology)
    except ValueError:
        return "modes"
    closures = zmatrix.closures(bond_pairs(topology))
    if any(len(ring) > AUTO_INTERNAL_MAX_RING for ring in zmatrix.rings(closures)):
        return "modes"
    return "internal"


def fit_featuriser(representation: Representation, frames: np.ndarray, topology: mdtraj.Topology, *,
                   bonds: BondModel | None = None) -> Featuriser:
    """Fit a featurisation (``auto`` resolved by :func:`resolve_representation`) on training ``frames`` (F, N, 3)
    nm; ``bonds`` as :func:`resolve_bond_model` (internal only)."""
    representation = resolve_representation(representation, topology)
    bonds = resolve_bond_model(representation, bonds if representation == "internal" else None)
    if representation == "internal":
        return InternalCoordinates.fit(frames, topology, bonds=bonds)
    if representation == "modes":
        return PrincipalModes.fit(frames, topology)
    return Standardiser.fit(frames)


def featuriser_from_json(data: dict) -> Featuriser:
    """The featuriser a checkpoint recorded (``kind`` absent: a cartesian one from before ``internal``)."""
    kind = data.get("kind", "cartesian")
    if kind == "internal":
        return InternalCoordinates.from_json(data)
    if kind == "modes":
        return PrincipalModes.from_json(data)
    return Standardiser.from_json(data)


def trajectory_bounds(store: StructureStore) -> list[tuple[int, int]]:
    """``[(start, stop), …]`` frame ranges of the store's trajectories."""
    total = int(store.coordinates.shape[-3]) if len(store.coordinates.shape) == 3 else 0
    starts = [int(s) for s in store.trajectory_start] + [total]
    return [(a, b) for a, b in zip(starts[:-1], starts[1:]) if b > a]


def lagged_pairs(bounds: list[tuple[int, int]], lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, i + lag)`` inside each trajectory."""
    if lag < 1:
        raise ValueError("the lag must be at least one frame")
    first = [np.arange(a, b - lag) for a, b in bounds if b - a > lag]
    if not first:
        raise ValueError(f"no trajectory is longer than the lag ({lag} frames)")
    i = np.concatenate(first)
    return i, i + lag
