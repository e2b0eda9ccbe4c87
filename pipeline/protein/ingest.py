"""Ingest MD trajectories (any format mdtraj reads) into a structure store.

Steps: read the topology (``--top``, or the first trajectory when it carries one: PDB, H5, …),
select atoms (mdtraj selection language), stream every trajectory in chunks (``mdtraj.iterload``,
out of core) with ``stride``, check atom counts and finiteness, append to the store with each
trajectory's first frame recorded in ``trajectory_start``; then, if asked, Kabsch-align every frame
(on all selected atoms) to a reference frame of the store or to a structure file. The store appears
only when everything succeeded (temp dir + rename).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.console import native_output_silenced
from pipeline.errors import UserError

if TYPE_CHECKING:
    import mdtraj

log = logging.getLogger(__name__)

CHUNK_FRAMES = 2000
MDCRD = (".mdcrd", ".crd")
# formats that carry their own topology (so --top may be omitted)
SELF_DESCRIBING = (".pdb", ".pdb.gz", ".h5", ".cif", ".pdbx", ".gro", ".mol2")
# formats whose frames carry no time (mdtraj reports the frame index): their time step is unknown
TIMELESS = (
    ".dcd",
    ".pdb",
    ".pdb.gz",
    ".cif",
    ".pdbx",
    ".mdcrd",
    ".crd",
    ".binpos",
    ".xyz",
    ".lammpstrj",
    ".arc",
    ".mol2",
)


def is_builtin(source: str) -> bool:
    return str(source).startswith("builtin:")


@contextlib.contextmanager
def readable_path(path: str | Path) -> Iterator[str]:
    """``path`` as mdtraj's C readers can open it: itself, or for a name with non-ASCII characters (which
    they cannot encode) a symbolic link with an ASCII name to it in a temporary directory."""
    text = str(path)
    if text.isascii():
        yield text
        return
    with tempfile.TemporaryDirectory(prefix="velocast-ascii-") as folder:
        suffix = "".join(Path(text).suffixes[-2:]) if text.lower().endswith(".gz") else Path(text).suffix
        alias = Path(folder) / f"input{suffix}"
        os.symlink(Path(text).resolve(), alias)
        yield str(alias)


def _existing_file(path: Path, what: str) -> None:
    """A UserError unless ``path`` is a file (a directory is named as one, not as missing)."""
    if path.is_dir():
        raise UserError(f"is a directory, not a {what} file; give the file inside it", path=path)
    if not path.is_file():
        raise UserError(f"{what} file not found", path=path)


def load_topology(path: str | Path) -> mdtraj.Topology:
    """mdtraj Topology from a file (PDB, prmtop, PSF, GRO, H5, …); unreadable files are UserErrors."""
    import mdtraj

    path = Path(path)
    _existing_file(path, "topology")
    try:
        with warnings.catch_warnings(), readable_path(path) as readable:
            warnings.simplefilter("ignore")
            with native_output_silenced():
                top = mdtraj.load_topology(readable)
    except Exception as exc:  # noqa: BLE001 - any parser failure means the file is bad
        raise UserError(
            f"cannot read topology ({_why(exc)}); is it a complete PDB/prmtop/PSF/GRO/H5 file?", path=path
        ) from None
    if top.n_atoms == 0:
        raise UserError("topology has no atoms", path=path)
    return top


def select_atoms(topology: mdtraj.Topology, selection: str | None) -> np.ndarray:
    """Atom indices of ``selection`` (mdtraj's language); empty or invalid selections are UserErrors."""
    if selection is None or selection.strip() in ("", "all"):
        return np.arange(topology.n_atoms)
    try:
        idx = topology.select(selection)
    except Exception as exc:  # noqa: BLE001 - mdtraj raises several types for bad syntax
        raise UserError(f"invalid atom selection {selection!r}: {_why(exc)}") from None
    if len(idx) == 0:
        raise UserError(
            f"atom selection {selection!r} matches no atoms of the {topology.n_atoms}-atom topology"
        )
    return np.asarray(idx)


def ingest_protein(
    *,
    traj: Sequence[str],
    out: str | Path,
    top: str | Path | None = None,
    select: str | None = None,
    stride: int = 1,
    align_to: str | int | None = None,
    time_step_ps: float | None = None,
    progress: bool = True,
) -> Path:
    """Ingest ``traj`` files (or ``builtin:alanine-dipeptide?…`` sources) into the store ``out``.

    ``time_step_ps`` is the spacing of the input files' frames, for formats without times (DCD, PDB);
    the stored step is that times ``stride``. Otherwise the step is read from the files' times.
    """
    from pipeline.protein.store import StructureStoreWriter
    from pipeline.provenance import file_sha256, provenance_record

    if not traj:
        raise UserError("give at least one trajectory (--traj)")
    if stride < 1:
        raise UserError(f"--stride must be >= 1, got {stride}")
    inputs = [_resolve_input(t, top) for t in traj]
    topology = inputs[0]["topology"]
    for item in inputs[1:]:
        if item["topology"].n_atoms != topology.n_atoms:
            raise UserError(
                f"has {item['topology'].n_atoms} atoms but the first trajectory's topology has "
                f"{topology.n_atoms}; all trajectories must share one topology",
                path=item["path"],
            )
    atom_idx = select_atoms(topology, select)
    sub_top = topology.subset(atom_idx)
    ref_xyz = _reference_file(align_to, topology, atom_idx) if _is_file_ref(align_to) else None

    from pipeline.console import make_progress

    sources: list[dict[str, Any]] = []
    md_cpu = 0.0
    time_steps: list[float] = []
    bond_lengths = None
    with StructureStoreWriter(out, topology=sub_top) as writer, make_progress(transient=True) as bar:
        task = bar.add_task("ingest", total=len(inputs), visible=progress)
        for item in inputs:
            writer.start_trajectory()
            n = 0
            times: list[np.ndarray] = []
            for xyz, time_ps, new_trajectory in _iter_frames(item, stride=stride, atom_idx=atom_idx):
                if new_trajectory and n > 0:
                    writer.start_trajectory()
                writer.append(xyz, time_ps)
                times.append(time_ps)
                n += len(xyz)
            if n == 0:
                raise UserError("trajectory has no frames (empty or truncated file?)", path=item["path"])
            t = np.concatenate(times)
            if len(t) > 1 and np.all(np.isfinite(t)):
                time_steps.append(float(np.median(np.diff(t))))
            source: dict[str, Any] = {"path": str(item["path"]), "n_frames": n}
            if item["builtin"]:
                md_cpu += float(item["attrs"].get("md_cpu_seconds") or 0.0)
                source["provenance"] = item["attrs"].get("provenance")
                bond_lengths = item["attrs"].get("bond_lengths_nm")
            else:
                source["sha256"] = file_sha256(item["path"])
            sources.append(source)
            bar.advance(task)
        if writer.n_frames == 0:
            raise UserError("no frames read")
        if align_to is not None:
            if ref_xyz is None:
                frame = int(align_to)
                if not -writer.n_frames <= frame < writer.n_frames:
                    raise UserError(
                        f"--align-to frame {frame} is outside the {writer.n_frames} ingested frames"
                    )
                ref_xyz = np.asarray(writer.coordinates[frame % writer.n_frames])
            _align_in_place(writer.coordinates, ref_xyz, progress=progress)
        if bond_lengths is not None and len(atom_idx) != topology.n_atoms:
            remap = {int(a): k for k, a in enumerate(atom_idx)}
            bond_lengths = [[remap[i], remap[j], r] for i, j, r in bond_lengths if i in remap and j in remap]
        if time_step_ps is not None:
            if time_step_ps <= 0:
                raise UserError(f"--time-step-ps must be > 0, got {time_step_ps}")
            step: float | None = float(time_step_ps) * stride
        else:
            step = time_steps[0] if time_steps and np.allclose(time_steps, time_steps[0]) else None
        writer.attrs.update(
            time_step_ps=step,
            sources=sources,
            selection=select or "all",
            stride=stride,
            aligned_to=None if align_to is None else str(align_to),
            provenance=provenance_record(
                source=[s["path"] for s in sources],
                recipe={
                    "select": select or "all",
                    "stride": stride,
                    "align_to": None if align_to is None else str(align_to),
                    "top": None if top is None else str(top),
                },
                data_snapshot={s["path"]: s.get("sha256") for s in sources},
            ),
        )
        if md_cpu:
            writer.attrs["md_cpu_seconds"] = md_cpu
        if bond_lengths is not None:
            writer.attrs["bond_lengths_nm"] = bond_lengths
        return writer.commit()


def _resolve_input(source: str, top: str | Path | None) -> dict[str, Any]:
    """A dict describing one input: path, topology, and for builtin sources the cached store."""
    if is_builtin(source):
        from pipeline.protein.simulate import parse_builtin, simulate_peptide
        from pipeline.protein.store import open_structure_store

        store = open_structure_store(simulate_peptide(params=parse_builtin(source)))
        return {
            "path": source,
            "builtin": True,
            "store": store,
            "topology": store.topology,
            "attrs": store.attrs,
        }
    path = Path(source)
    _existing_file(path, "trajectory")
    if top is None:
        if not str(path).lower().endswith(SELF_DESCRIBING):
            raise UserError(
                "this format carries no topology; give --top (PDB, prmtop, PSF, GRO …)", path=path
            )
        topology = load_topology(path)
        top_arg = str(path)
    else:
        topology = load_topology(top)
        top_arg = str(top)
    return {"path": path, "builtin": False, "topology": topology, "top": top_arg}


def _iter_frames(
    item: dict[str, Any], *, stride: int, atom_idx: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """Yield (xyz (frame, sel_atom, 3) nm float32, time ps, starts a new trajectory) chunks.

    A builtin source yields one trajectory per replica; every file problem is a UserError.
    """
    if item["builtin"]:
        store = item["store"]
        for a, b in zip(
            store.trajectory_start, list(store.trajectory_start[1:]) + [store.coordinates.shape[0]]
        ):
            xyz = np.asarray(store.coordinates[int(a) : int(b) : stride])[:, atom_idx]
            t = (
                store.time_ps[int(a) : int(b) : stride]
                if store.time_ps is not None
                else np.full(len(xyz), np.nan)
            )
            yield xyz, t, True
        return
    for xyz, t in _iter_file(item["path"], item["top"], item["topology"], stride=stride, atom_idx=atom_idx):
        yield xyz, t, False


def _iter_file(
    path: Path, top: str, topology: mdtraj.Topology, *, stride: int, atom_idx: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    import mdtraj

    n_file_atoms = _file_atom_count(path)
    if n_file_atoms is not None and n_file_atoms != topology.n_atoms:
        raise UserError(
            f"trajectory has {n_file_atoms} atoms but the topology has {topology.n_atoms}; "
            "give the matching --top",
            path=path,
        )
    if path.suffix.lower() in MDCRD:
        check_mdcrd(path, topology.n_atoms)
    expected = _declared_frames(path)
    n_read = 0
    frame0 = 0
    try:
        with warnings.catch_warnings(), readable_path(path) as readable, readable_path(top) as readable_top:
            warnings.simplefilter("ignore")
            with native_output_silenced():
                chunks = iter(mdtraj.iterload(readable, top=readable_top, chunk=CHUNK_FRAMES, stride=stride))
            while True:
                with native_output_silenced():
                    chunk = next(chunks, None)
                if chunk is None:
                    break
                xyz = np.asarray(chunk.xyz, dtype=np.float32)
                bad = ~np.isfinite(xyz).all(axis=(1, 2))
                if bad.any():
                    first = frame0 + int(np.argmax(bad)) * 1
                    raise UserError(
                        f"non-finite (NaN/inf) coordinates in frame {first} (after stride "
                        f"{stride}); fix or trim the trajectory",
                        path=path,
                    )
                collapsed = (np.ptp(xyz, axis=1).max(axis=-1) == 0.0) if xyz.shape[1] > 1 else bad
                if collapsed.any():  # e.g. a truncated NetCDF reads as all-zero frames
                    first = frame0 + int(np.argmax(collapsed))
                    raise UserError(
                        f"frame {first} (after stride {stride}) has every atom at the same point "
                        "(all zeros?); the file is probably truncated or corrupt",
                        path=path,
                    )
                n_read += len(xyz)
                frame0 += len(xyz)
                timeless = chunk.time is None or str(path).lower().endswith(TIMELESS)
                time = np.full(len(xyz), np.nan) if timeless else np.asarray(chunk.time, dtype=np.float64)
                yield xyz[:, atom_idx], time
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure is a bad file
        msg = _why(exc)
        if "same atoms" in msg or "must be shape" in msg:
            raise UserError(
                f"atom count differs from the topology's {topology.n_atoms} atoms ({msg}); "
                "give the matching --top",
                path=path,
            ) from None
        raise UserError(
            f"cannot read trajectory ({msg}); the file may be truncated, corrupt or of an unsupported format",
            path=path,
        ) from None
    if expected is not None and n_read < -(-expected // stride):
        whole = dcd_whole_frames(path)
        if whole is None or n_read != -(-whole // stride):
            raise UserError(
                f"truncated: the header declares {expected} frames but only {n_read * stride} could be read "
                "and the last one is incomplete", path=path,
            )
        # a stale header (a run that was stopped, a concatenation): every frame present is whole
        log.warning("%s: the DCD header declares %d frames but the file holds %d whole frames; reading those",
                    path, expected, whole)


def _file_atom_count(path: Path) -> int | None:
    """Atoms per frame declared by a DCD/XTC/TRR/NetCDF/H5 file's own header, when cheap to read."""
    import mdtraj

    suffix = path.suffix.lower()
    if suffix not in (".dcd", ".xtc", ".trr", ".nc", ".netcdf", ".ncdf", ".h5"):
        return None
    try:
        with warnings.catch_warnings(), readable_path(path) as readable:
            warnings.simplefilter("ignore")
            with native_output_silenced(), mdtraj.open(readable) as handle:
                if suffix in (".xtc", ".trr"):
                    xyz = handle.read(n_frames=1)[0]
                    return int(xyz.shape[1]) if len(xyz) else None
                if suffix == ".dcd":
                    xyz = handle.read(n_frames=1)[0]
                    return int(xyz.shape[1]) if len(xyz) else None
                if suffix == ".h5":
                    return int(handle.topology.n_atoms) if handle.topology is not None else None
                return int(handle.n_atoms)
    except Exception:  # noqa: BLE001 - the full read reports the problem
        return None


def _declared_frames(path: Path) -> int | None:
    """Frame count in a CHARMM/NAMD DCD header (NSET), used to detect truncated DCDs."""
    if path.suffix.lower() != ".dcd":
        return None
    header = _dcd_header(path)
    return header[1][0] if header is not None and header[1][0] > 0 else None


def _dcd_header(path: Path) -> tuple[str, list[int]] | None:
    """(byte order, the 20 control integers) of a CHARMM/NAMD DCD file, or None."""
    with open(path, "rb") as handle:
        head = handle.read(92)
    if len(head) < 92:
        return None
    for order in ("<", ">"):
        if int(np.frombuffer(head[:4], dtype=f"{order}i4")[0]) == 84 and head[4:8] == b"CORD":
            return order, [int(v) for v in np.frombuffer(head[8:88], dtype=f"{order}i4")]
    return None


def dcd_whole_frames(path: Path) -> int | None:
    """How many whole frames a DCD file holds, from its size and its header's layout (None for a layout this
    does not know: fixed atoms, 4-D coordinates)."""
    header = _dcd_header(path)
    if header is None:
        return None
    order, control = header
    fixed, unit_cell, four_d = control[8], control[10], control[11]
    if fixed or four_d:
        return None
    with open(path, "rb") as handle:
        handle.seek(92)
        title_bytes = int(np.frombuffer(handle.read(4), dtype=f"{order}i4")[0])
        handle.seek(92 + 4 + title_bytes + 4 + 4)
        n_atoms = int(np.frombuffer(handle.read(4), dtype=f"{order}i4")[0])
    start = 92 + (8 + title_bytes) + 12
    frame = (56 if unit_cell and control[19] else 0) + 3 * (8 + 4 * n_atoms)
    size = path.stat().st_size - start
    return size // frame if size >= 0 and size % frame == 0 else None


def check_mdcrd(path: Path, n_atoms: int) -> None:
    """An ASCII AMBER trajectory (10 coordinates of 8 characters per line) must hold whole frames of
    ``n_atoms`` atoms (with or without a box line each); mdtraj silently drops an incomplete last frame."""
    numbers = 0
    with open(path, "rb") as handle:
        next(handle, None)  # the title line
        for line in handle:
            numbers += len(line.rstrip(b"\r\n")) // 8
    per_frame = 3 * n_atoms
    lines_per_frame = math.ceil(per_frame / 10)
    if numbers == 0 or any(numbers % size == 0 for size in (per_frame, per_frame + 3)):
        return
    raise UserError(f"holds {numbers} coordinates, not a whole number of frames of the topology's {n_atoms} atoms "
                    f"({per_frame} each, {lines_per_frame} lines): the file is truncated mid-frame, or --top does not "
                    "match it", path=path)


def _is_file_ref(align_to: str | int | None) -> bool:
    if align_to is None or isinstance(align_to, int):
        return False
    try:
        int(align_to)
        return False
    except ValueError:
        return True


def _reference_file(
    align_to: str | int | None, topology: mdtraj.Topology, atom_idx: np.ndarray
) -> np.ndarray:
    """First frame of a reference structure file, restricted to the selected atoms."""
    import mdtraj

    path = Path(str(align_to))
    if not path.is_file():
        raise UserError("--align-to is neither a frame index nor an existing structure file", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with native_output_silenced():
                ref = mdtraj.load_frame(str(path), 0) if path.suffix.lower() in SELF_DESCRIBING else None
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read the alignment reference ({_why(exc)})", path=path) from None
    if ref is None:
        raise UserError(
            "the alignment reference must be a structure file with its own topology (PDB, H5, GRO)", path=path
        )
    if ref.n_atoms == topology.n_atoms:
        return ref.xyz[0][atom_idx]
    if ref.n_atoms == len(atom_idx):
        return ref.xyz[0]
    raise UserError(
        f"alignment reference has {ref.n_atoms} atoms; expected {topology.n_atoms} (whole topology) "
        f"or {len(atom_idx)} (the selection)",
        path=path,
    )


def _align_in_place(coordinates: Any, reference: np.ndarray, *, progress: bool) -> None:
    """Kabsch-align every frame of the Zarr array on ``reference`` (all atoms), chunk by chunk."""
    from pipeline.protein.geometry import kabsch_align

    n = coordinates.shape[0]
    step = int(coordinates.chunks[0])
    for a in range(0, n, step):
        block = np.asarray(coordinates[a : a + step])
        coordinates[a : a + step] = kabsch_align(block, reference)


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
