"""All-atom structures rebuilt from sampled backbones, with PDBFixer and OpenMM.

A model trained on a backbone selection samples N, CA, C and O only. :func:`rebuild_all_atom` gives each
structure back its side chains (and the C-terminal OXT; hydrogens when asked) with the tools a structural
biologist uses on a crystal structure with missing atoms:

1. PDBFixer (openmm/pdbfixer) places every missing heavy atom of a standard residue from the residue's template,
   superposed on the residue's sampled atoms, and minimises the added atoms under its soft repulsive force field
   while the sampled atoms stay fixed (where two atoms are still closer than 1.3 Å it runs a few rounds of
   dynamics with a growing repulsion first);
2. OpenMM's Modeller adds the hydrogens of pH 7 (amber14 templates);
3. the side chains are relaxed: an energy minimisation under amber14 in vacuum (1 nm cutoff, at most 500
   iterations) with every sampled atom held fixed (massless). Template placement alone leaves a ring flipped onto
   its neighbour now and then (a proline's CD 2.1 Å from the next N); the relaxation removes such clashes, but
   not a side chain wedged between two backbone segments, which needs a rotamer search (a side-chain packer)
   that PDBFixer does not do.

The sampled atoms never move, so a rebuilt structure keeps exactly the chain and the fold of its sample; missing
loops (chain breaks) are not modelled. It needs N, CA and C of every amino-acid residue: a Cα trace holds one atom
per residue, which fixes no orientation for a template. Hydrogens are dropped again unless asked for. Cost, per
structure on one core: a quarter of a second for a dozen residues, 1–1.5 minutes for 200 (docs/results/molecules.md),
so it is for the structures one looks at, not for whole sample sets.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import UserError

if TYPE_CHECKING:
    import mdtraj

REQUIRED_BACKBONE = ("N", "CA", "C")


def check_rebuildable(topology: mdtraj.Topology) -> None:
    """UserError unless every amino-acid residue has its N, CA and C (the atoms a template is superposed on)."""
    protein = [r for r in topology.residues if r.is_protein]
    if not protein:
        raise UserError("no amino-acid residues to rebuild: the store holds no protein")
    for residue in protein:
        missing = [name for name in REQUIRED_BACKBONE if name not in {a.name for a in residue.atoms}]
        if missing:
            raise UserError(
                f"rebuilding all atoms needs N, CA and C of every residue; {residue} has no {', '.join(missing)} "
                "(a Cα trace cannot be rebuilt: ingest and train with --select backbone)")


def _fixer_input(xyz: np.ndarray, topology: mdtraj.Topology) -> io.StringIO:
    """The structure as PDB text (mdtraj writes it; PDBFixer reads it through OpenMM's PDB reader)."""
    import tempfile
    from pathlib import Path

    import mdtraj

    with tempfile.TemporaryDirectory(prefix="velocast-rebuild-") as tmp:
        path = Path(tmp) / "structure.pdb"
        mdtraj.Trajectory(xyz[None], topology).save_pdb(str(path))
        return io.StringIO(path.read_text())


RELAX_ITERATIONS = 500
RELAX_TOLERANCE = 10.0  # kJ/mol/nm: OpenMM's default minimiser tolerance


def rebuild_structure(xyz: np.ndarray, topology: mdtraj.Topology, *, hydrogens: bool = False,
                      seed: int = 0) -> tuple[np.ndarray, mdtraj.Topology]:
    """One structure (atoms, 3) nm of ``topology`` → (all-atom coordinates (atoms', 3) nm, all-atom topology)."""
    import mdtraj
    import openmm
    from openmm import app, unit
    from pdbfixer import PDBFixer

    cpu = openmm.Platform.getPlatformByName("CPU")
    fixer = PDBFixer(pdbfile=_fixer_input(np.asarray(xyz, dtype=np.float32), topology), platform=cpu)
    fixer.findMissingResidues()
    fixer.missingResidues = {}  # a chain break stays a break: no loop is invented
    fixer.findMissingAtoms()
    fixer.addMissingAtoms(seed=seed)
    sampled = {(a.residue.index, a.name) for a in topology.atoms}
    forcefield = app.ForceField("amber14-all.xml")
    modeller = app.Modeller(fixer.topology, fixer.positions)
    try:
        modeller.addHydrogens(forcefield, pH=7.0)
        system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.CutoffNonPeriodic,
                                         nonbondedCutoff=1.0 * unit.nanometer, constraints=None)
    except ValueError as exc:  # a residue amber14 has no template for
        raise UserError(f"cannot rebuild all atoms: {exc}".splitlines()[0]) from None
    for atom in modeller.topology.atoms():
        if (atom.residue.index, atom.name) in sampled:
            system.setParticleMass(atom.index, 0.0)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), cpu)
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, RELAX_TOLERANCE, RELAX_ITERATIONS)
    positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    rebuilt = mdtraj.Topology.from_openmm(modeller.topology)
    if not hydrogens:
        heavy = rebuilt.select("not element H")
        rebuilt, positions = rebuilt.subset(heavy), positions[heavy]
    return np.asarray(positions, dtype=np.float64), rebuilt


def _atom_keys(topology: mdtraj.Topology) -> list[tuple[int, str]]:
    return [(a.residue.index, a.name) for a in topology.atoms]


def rebuild_all_atom(coordinates: np.ndarray, topology: mdtraj.Topology, *, hydrogens: bool = False,
                     seed: int = 0, on_structure: Callable[[int], None] | None = None,
                     ) -> tuple[np.ndarray, mdtraj.Topology, float]:
    """Rebuild every structure of ``coordinates`` (n, atoms, 3) nm (module docstring).

    Returns (coordinates (n, atoms', 3) nm, the all-atom topology of the first structure, CPU seconds per
    structure). Every structure's atoms are put in the first one's order."""
    check_rebuildable(topology)
    begin = time.process_time()
    out: list[np.ndarray] = []
    first_topology = None
    for k, xyz in enumerate(np.asarray(coordinates)):
        positions, rebuilt = rebuild_structure(xyz, topology, hydrogens=hydrogens, seed=seed + k)
        if first_topology is None:
            first_topology, order = rebuilt, _atom_keys(rebuilt)
        keys = _atom_keys(rebuilt)
        if keys != order:
            where = {key: i for i, key in enumerate(keys)}
            if set(where) != set(order):
                raise RuntimeError(f"structure {k} was rebuilt with other atoms than structure 0")
            positions = positions[[where[key] for key in order]]
        out.append(positions)
        if on_structure is not None:
            on_structure(1)
    assert first_topology is not None
    seconds = (time.process_time() - begin) / max(1, len(out))
    return np.stack(out), first_topology, seconds
