"""The Zarr v3 structure store shared by ingest, simulate, sample, forecast and export.

Layout (one Zarr v3 group)::

    STORE/
      coordinates       float32 (frame, atom, xyz) in nanometres       -- MD data, ingest, simulate
                        or (sample|member, frame, atom, xyz)            -- generated samples / forecasts
      time              float64 (frame,) picoseconds since the start of each trajectory (optional)
      trajectory_start  int64 (n_trajectories,) first frame index of each concatenated trajectory
      attrs:
        kind             "velocast.structures"
        format_version   1
        units            {"coordinates": "nm", "time": "ps"}
        topology         mdtraj topology as JSON (see pipeline.protein.topology), bonds included
        time_step_ps     spacing of saved frames in ps (null if unknown)
        sources          list of {"path", "sha256"?, "n_frames"} or builtin source strings
        provenance       pipeline.provenance.provenance_record(...)
        md_cpu_seconds   CPU seconds of the MD that produced the frames (simulate; carried by ingest)
        bond_lengths_nm  [[i, j, r0], ...] force-field equilibrium bond lengths (simulate; optional)

Stores are written into a temporary directory beside the target and renamed into place, so a
reader never sees a half-written store.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import UserError
from pipeline.files import clean_stale, replace_into, temp_beside
from pipeline.protein.topology import topology_from_dict, topology_to_dict

if TYPE_CHECKING:
    import mdtraj
    import zarr

STORE_KIND = "velocast.structures"
FORMAT_VERSION = 1
LEADING_DIMS = ("sample", "member")


@dataclass
class StructureStore:
    """An opened structure store: ``coordinates`` is the lazy Zarr array (nm)."""

    path: Path
    coordinates: zarr.Array
    dims: tuple[str, ...]
    topology: mdtraj.Topology
    time_ps: np.ndarray | None
    trajectory_start: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def n_atoms(self) -> int:
        return int(self.coordinates.shape[-2])

    @property
    def time_step_ps(self) -> float | None:
        value = self.attrs.get("time_step_ps")
        return None if value is None else float(value)

    @property
    def n_structures(self) -> int:
        """Structures in the store (leading dims flattened)."""
        return int(np.prod(self.coordinates.shape[:-2]))

    def frames(self, at: np.ndarray | None = None) -> np.ndarray:
        """All structures (or those at the flat indices ``at``) as one (n, atom, xyz) float32 array, leading dims
        flattened; ``at`` on a frame store reads only those frames."""
        if at is not None and len(self.coordinates.shape) == 3:
            return np.asarray(self.coordinates.get_orthogonal_selection((np.asarray(at), slice(None), slice(None))),
                              dtype=np.float32)
        data = np.asarray(self.coordinates[...], dtype=np.float32)
        data = data.reshape(-1, data.shape[-2], 3)
        return data if at is None else data[np.asarray(at)]

    def trajectory_pieces(self, atoms: np.ndarray, *, chunk: int = 5000):
        """Yield ``(trajectory index, frames (n, len(atoms), 3) float32)`` of every trajectory (as
        :meth:`trajectories` splits them), reading only ``atoms`` and at most ``chunk`` frames at a time."""
        atoms = np.asarray(atoms)
        shape = self.coordinates.shape
        if len(shape) == 4:
            for k in range(shape[0]):
                yield k, np.asarray(self.coordinates.get_orthogonal_selection((k, slice(None), atoms, slice(None))),
                                    dtype=np.float32)
            return
        bounds = [*(int(v) for v in self.trajectory_start), int(shape[0])]
        for k, (a, b) in enumerate((a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a):
            for begin in range(a, b, chunk):
                part = (slice(begin, min(b, begin + chunk)), atoms, slice(None))
                yield k, np.asarray(self.coordinates.get_orthogonal_selection(part), dtype=np.float32)

    def trajectories(self) -> list[np.ndarray]:
        """The store as a list of time series (frame, atom, xyz): one per trajectory or member.

        Frame stores split at ``trajectory_start``; (member, frame, ...) stores give one per member;
        (sample, frame, ...) stores give one per sample.
        """
        data = np.asarray(self.coordinates[...], dtype=np.float32)
        if data.ndim == 4:
            return [data[i] for i in range(data.shape[0])]
        bounds = list(self.trajectory_start) + [data.shape[0]]
        return [data[int(a) : int(b)] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _tmp_beside(out: Path) -> Path:
    """A fresh temporary directory beside ``out``; what an interrupted write left there is removed first."""
    clean_stale(out)
    return temp_beside(out, directory=True)


def _replace(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` onto ``out`` (an existing store is moved aside first, then removed)."""
    replace_into(tmp, out)


class StructureStoreWriter:
    """Stream frames into a new store; on ``commit()`` the store appears at ``out`` atomically.

    Use as a context manager: an exception (or leaving without commit) removes the temporary store.
    """

    def __init__(
        self,
        out: str | Path,
        *,
        topology: mdtraj.Topology,
        dims: Sequence[str] = ("frame", "atom", "xyz"),
        leading_shape: Sequence[int] = (),
        chunk_frames: int = 1000,
        with_time: bool = True,
    ) -> None:
        import zarr

        self.out = Path(out)
        self.tmp = _tmp_beside(self.out)
        self.dims = tuple(dims)
        if self.dims[-2:] != ("atom", "xyz") or len(self.dims) != 2 + len(leading_shape) + 1:
            raise ValueError(f"dims must end with (frame, atom, xyz), got {self.dims}")
        self.group = zarr.open_group(str(self.tmp), mode="w", zarr_format=3)
        n_atoms = topology.n_atoms
        self.n_atoms = n_atoms
        self.leading_shape = tuple(int(n) for n in leading_shape)
        self.coordinates = self.group.create_array(
            "coordinates",
            shape=(*self.leading_shape, 0, n_atoms, 3),
            chunks=(*([1] * len(self.leading_shape)), chunk_frames, n_atoms, 3),
            dtype="float32",
            dimension_names=self.dims,
        )
        self.time = (
            self.group.create_array(
                "time",
                shape=(0,),
                chunks=(max(chunk_frames, 4096),),
                dtype="float64",
                dimension_names=(self.dims[-3],),
            )
            if with_time
            else None
        )
        self.attrs: dict[str, Any] = {
            "kind": STORE_KIND,
            "format_version": FORMAT_VERSION,
            "units": {"coordinates": "nm", "time": "ps"},
            "topology": topology_to_dict(topology),
        }
        self.trajectory_start: list[int] = []
        self.n_frames = 0
        self._committed = False

    def start_trajectory(self) -> None:
        """Mark the next appended frame as the first of a new trajectory."""
        self.trajectory_start.append(self.n_frames)

    def append(self, coordinates: np.ndarray, time_ps: np.ndarray | None = None) -> None:
        """Append frames (…, frame, atom, xyz) in nm; every frame must be finite."""
        coordinates = np.asarray(coordinates, dtype=np.float32)
        if coordinates.shape[-2:] != (self.n_atoms, 3):
            raise ValueError(f"expected (..., frame, {self.n_atoms}, 3), got {coordinates.shape}")
        if not self.trajectory_start:
            self.start_trajectory()
        self.coordinates.append(coordinates, axis=len(self.leading_shape))
        if self.time is not None:
            n = coordinates.shape[-3]
            self.time.append(np.full(n, np.nan) if time_ps is None else np.asarray(time_ps, dtype=np.float64))
        self.n_frames += coordinates.shape[-3]

    def commit(self) -> Path:
        """Write attrs and ``trajectory_start`` and rename the store into place."""
        starts = np.asarray(self.trajectory_start or [0], dtype=np.int64)
        arr = self.group.create_array(
            "trajectory_start", shape=starts.shape, dtype="int64", dimension_names=("trajectory",)
        )
        arr[...] = starts
        self.group.attrs.update(_jsonable(self.attrs))
        _replace(self.tmp, self.out)
        self._committed = True
        return self.out

    def abort(self) -> None:
        if not self._committed:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> StructureStoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def write_structure_store(
    out: str | Path,
    *,
    coordinates: np.ndarray,
    topology: mdtraj.Topology,
    dims: Sequence[str] = ("frame", "atom", "xyz"),
    time_ps: np.ndarray | None = None,
    trajectory_start: Sequence[int] | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Write an in-memory array as a structure store (atomically). ``coordinates`` in nm."""
    coordinates = np.asarray(coordinates, dtype=np.float32)
    with StructureStoreWriter(
        out,
        topology=topology,
        dims=dims,
        leading_shape=coordinates.shape[:-3],
        chunk_frames=max(1, min(coordinates.shape[-3], 1000)),
        with_time=time_ps is not None,
    ) as writer:
        writer.append(coordinates, time_ps)
        writer.trajectory_start = [
            int(s) for s in (trajectory_start if trajectory_start is not None else [0])
        ]
        writer.attrs.update(attrs or {})
        writer.attrs.setdefault("time_step_ps", None)
        return writer.commit()


def open_structure_store(path: str | Path) -> StructureStore:
    """Open a store written by :class:`StructureStoreWriter`; a missing or foreign store is a UserError."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise UserError("structure store not found", path=path)
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
        coordinates = group["coordinates"]
    except Exception as exc:  # noqa: BLE001 - any read failure is the user's file
        raise UserError(
            f"not a readable velocast structure store ({type(exc).__name__}: {exc})", path=path
        ) from None
    if attrs.get("kind") != STORE_KIND or "topology" not in attrs:
        raise UserError("not a velocast structure store (missing kind/topology attributes)", path=path)
    dims = tuple(coordinates.metadata.dimension_names or ())
    keys = set(group.array_keys())
    time_ps = np.asarray(group["time"][...]) if "time" in keys else None
    starts = (
        np.asarray(group["trajectory_start"][...]) if "trajectory_start" in keys else np.zeros(1, np.int64)
    )
    return StructureStore(
        path=path,
        coordinates=coordinates,
        dims=dims,
        topology=topology_from_dict(attrs["topology"]),
        time_ps=time_ps,
        trajectory_start=starts,
        attrs=attrs,
    )


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays and paths to plain JSON types, recursively."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
