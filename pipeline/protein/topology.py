"""mdtraj Topology <-> a JSON-serialisable dict (chains, residues, atoms, bonds), lossless for velocast.

The dict is what a structure store keeps in its ``topology`` attribute::

    {"chains": [{"segment_id": str, "residues": [{"name", "resSeq", "segment_id",
                 "atoms": [{"name", "element", "serial"}]}]}],
     "bonds": [[i, j, type | null, order | null], ...]}   # atom indices in file order

``type`` is the bond type's name (``Single``, ``Double``, ``Amide`` ...) or null.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import mdtraj


def topology_to_dict(topology: mdtraj.Topology) -> dict[str, Any]:
    """The JSON form of ``topology`` (every chain, residue, atom and bond, in order)."""
    chains = []
    for chain in topology.chains:
        residues = []
        for residue in chain.residues:
            atoms = [
                {
                    "name": atom.name,
                    "element": atom.element.symbol if atom.element is not None else "",
                    "serial": None if atom.serial is None else int(atom.serial),
                }
                for atom in residue.atoms
            ]
            residues.append(
                {
                    "name": residue.name,
                    "resSeq": int(residue.resSeq),
                    "segment_id": residue.segment_id,
                    "atoms": atoms,
                }
            )
        chains.append({"segment_id": getattr(chain, "chain_id", None) or "", "residues": residues})
    bonds = [
        [
            int(bond.atom1.index),
            int(bond.atom2.index),
            None if bond.type is None else str(bond.type),
            None if bond.order is None else int(bond.order),
        ]
        for bond in topology.bonds
    ]
    return {"chains": chains, "bonds": bonds}


def topology_from_dict(data: dict[str, Any]) -> mdtraj.Topology:
    """Rebuild the mdtraj Topology written by :func:`topology_to_dict` (bonds included)."""
    import mdtraj
    from mdtraj.core import element as elem
    from mdtraj.core.topology import Amide, Aromatic, Double, Single, Triple

    bond_types = {str(t): t for t in (Single, Double, Triple, Amide, Aromatic)}
    top = mdtraj.Topology()
    atoms = []
    for chain_data in data["chains"]:
        chain = top.add_chain(chain_id=chain_data.get("segment_id") or None)
        for res in chain_data["residues"]:
            residue = top.add_residue(
                res["name"], chain, resSeq=res["resSeq"], segment_id=res.get("segment_id", "")
            )
            for atom in res["atoms"]:
                element = elem.get_by_symbol(atom["element"]) if atom["element"] else elem.virtual
                atoms.append(top.add_atom(atom["name"], element, residue, serial=atom.get("serial")))
    for i, j, kind, order in data["bonds"]:
        top.add_bond(atoms[i], atoms[j], type=bond_types.get(kind) if kind else None, order=order)
    return top
