"""Where a run's artefacts live, and how an artefact's identity (its fingerprint) is read.

A domain's run layout is a :class:`Layout` subclass whose class attributes are :func:`artefact`
declarations; on an instance (one run directory) each attribute is that artefact's path::

    class WeatherRunLayout(Layout):
        atmosphere = artefact("atmosphere.zarr", "zarr", "the simulated analyses")

    WeatherRunLayout("runs/w").atmosphere      # Path("runs/w/atmosphere.zarr")
    WeatherRunLayout.artefacts()["atmosphere"]  # Artefact(path="atmosphere.zarr", kind="zarr", ...)

A fingerprint changes whenever the artefact's content does, and is cheap to read:

* ``zarr`` — a digest of every ``zarr.json`` of the store (array shapes, attributes; no chunk is read);
* ``icechunk`` — the head snapshot id of the repository's ``main`` branch;
* ``run`` — the SHA-256 of the newest checkpoint's weights (``none`` without a checkpoint);
* ``file`` — the SHA-256 of the file's bytes;

and is ``absent`` for a path that does not exist.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

ArtefactKind = Literal["zarr", "icechunk", "run", "file"]
ABSENT = "absent"


@dataclass(frozen=True)
class Artefact:
    """One artefact of a run: its path inside the run directory, its kind and what it holds."""

    path: str
    kind: ArtefactKind
    description: str


class artefact:
    """Declare an artefact on a :class:`Layout`: its path on an instance, its :class:`Artefact` on the class."""

    def __init__(self, path: str, kind: ArtefactKind, description: str) -> None:
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise ValueError(f"artefact path {path!r} must be relative and inside the run directory")
        self.spec = Artefact(path=path, kind=kind, description=description)
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Artefact: ...
    @overload
    def __get__(self, obj: Layout, owner: type | None = None) -> Path: ...
    def __get__(self, obj: Layout | None, owner: type | None = None) -> Artefact | Path:
        return self.spec if obj is None else obj.root / self.spec.path


class Layout:
    """A run directory and the artefacts a domain's run keeps in it (declared with :func:`artefact`)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def artefacts(cls) -> dict[str, Artefact]:
        """Every declared artefact by name, in declaration order (base classes first)."""
        found: dict[str, Artefact] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, artefact):
                    found[name] = value.spec
        return found

    def path(self, name: str) -> Path:
        """The path of artefact ``name`` in this run."""
        return self.root / self.artefacts()[name].path

    def fingerprint(self, name: str) -> str:
        """The current fingerprint of artefact ``name`` (see the module doc)."""
        return fingerprint(self.path(name), self.artefacts()[name].kind)

    def remove(self, name: str) -> None:
        """Delete artefact ``name`` (a file or a directory) if it exists."""
        path = self.path(name)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _zarr_metadata_digest(root: Path) -> str:
    """A digest of every ``zarr.json`` below ``root``; chunk folders (``c``) are not walked."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "c")
        if "zarr.json" in files:
            meta = Path(folder) / "zarr.json"
            digest.update(str(meta.relative_to(root)).encode())
            digest.update(meta.read_bytes())
    return digest.hexdigest()[:32]


def fingerprint(path: str | Path, kind: ArtefactKind) -> str:
    """The fingerprint of the artefact of ``kind`` at ``path`` (``absent`` when there is none)."""
    path = Path(path)
    if not path.exists():
        return ABSENT
    if kind == "file":
        return f"sha256:{_sha256_file(path)[:32]}"
    if kind == "zarr":
        return f"zarr:{_zarr_metadata_digest(path)}"
    if kind == "icechunk":
        from pipeline.forecast_store import ForecastStore

        return f"snapshot:{ForecastStore.open(path).head()}"
    if kind == "run":
        from models.training.checkpoint import latest_checkpoint

        ckpt = path if (path / "weights.safetensors").is_file() else latest_checkpoint(path)
        return "none" if ckpt is None else f"sha256:{_sha256_file(ckpt / 'weights.safetensors')}"
    raise ValueError(f"unknown artefact kind {kind!r}")
