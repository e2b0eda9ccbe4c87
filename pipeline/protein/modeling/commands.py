"""The work behind ``velocast sample protein`` and ``velocast forecast protein``.

Output layout (``--out DIR``)::

    DIR/samples.zarr | DIR/trajectories.zarr   structure store (sample|member, frame, atom, xyz), nm
    DIR/exports/                               topology.pdb + PDB (≤ 1000 models), XTC, DCD per group
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from models.distillation import recorded_sampler
from pipeline.console import make_progress
from pipeline.protein.export import export_structures
from pipeline.protein.modeling.generate import (
    forecast_trajectories,
    generation_attrs,
    load_protein_model,
    sample_conformations,
)
from pipeline.protein.store import open_structure_store, write_structure_store

EXPORT_FORMATS: tuple[str, ...] = ("pdb", "xtc", "dcd")


def sample_protein(*, model: str | Path, n: int, out: str | Path, sampler: str | None = None,
                   steps: int | None = None, seed: int = 0, formats: Sequence[str] = EXPORT_FORMATS,
                   progress: bool = True) -> Path:
    """Draw ``n`` conformations into ``out/samples.zarr`` and export them; returns the store path.

    ``sampler``/``steps`` default to the checkpoint's own (a distilled student's), else heun × 16."""
    loaded = load_protein_model(model)
    sampler, steps = recorded_sampler(loaded.metadata, sampler, steps, default=("heun", 16))
    with make_progress(enabled=progress) as bar:
        task = bar.add_task("sample", total=n)
        generated = sample_conformations(loaded, n=n, sampler=sampler, steps=steps, seed=seed,
                                         on_batch=lambda k: bar.advance(task, k))
    out = Path(out)
    settings = {"model": str(model), "n": n, "sampler": sampler, "steps": steps, "seed": seed}
    store = write_structure_store(
        out / "samples.zarr", coordinates=generated.coordinates[:, None], topology=loaded.topology,
        dims=("sample", "frame", "atom", "xyz"),
        attrs=generation_attrs(loaded, generated, command="velocast sample protein", settings=settings),
    )
    if formats:
        export_structures(store, out / "exports", formats=tuple(formats))
    return store


def start_frame(spec: str) -> np.ndarray:
    """``STORE[:INDEX]`` (default index 0) or a structure file mdtraj reads → (N, 3) nm."""
    path, _, index = str(spec).rpartition(":") if ":" in str(spec) and not Path(spec).exists() else (spec, "", "")
    if Path(path).suffix == ".zarr" or (Path(path) / "zarr.json").exists():
        frames = open_structure_store(path).frames()
        i = int(index or 0)
        if not -len(frames) <= i < len(frames):
            raise ValueError(f"{path}: frame {i} is out of range (the store has {len(frames)} frames)")
        return frames[i]
    import mdtraj

    return mdtraj.load_frame(str(path), int(index or 0)).xyz[0]


def forecast_protein(*, model: str | Path, start: str, steps: int, members: int, out: str | Path,
                     sampler: str | None = None, sampler_steps: int | None = None, seed: int = 0,
                     formats: Sequence[str] = EXPORT_FORMATS, progress: bool = True) -> Path:
    """Roll ``members`` trajectories of ``steps`` lags into ``out/trajectories.zarr`` and export them.

    ``sampler``/``sampler_steps`` default to the checkpoint's own, else heun × 16."""
    loaded = load_protein_model(model)
    sampler, sampler_steps = recorded_sampler(loaded.metadata, sampler, sampler_steps, default=("heun", 16))
    first = start_frame(start)
    if first.shape != (loaded.topology.n_atoms, 3):
        raise ValueError(f"the start structure has {first.shape[0]} atoms, the model {loaded.topology.n_atoms}")
    with make_progress(enabled=progress) as bar:
        task = bar.add_task("forecast", total=steps)
        generated = forecast_trajectories(loaded, start=first, steps=steps, members=members, sampler=sampler,
                                          sampler_steps=sampler_steps, seed=seed,
                                          on_step=lambda k: bar.advance(task, k))
    out = Path(out)
    settings = {"model": str(model), "start": str(start), "steps": steps, "members": members,
                "sampler": sampler, "sampler_steps": sampler_steps, "seed": seed}
    attrs = generation_attrs(loaded, generated, command="velocast forecast protein", settings=settings)
    lag = float(loaded.metadata["lag_ps"])
    attrs["time_step_ps"] = lag
    store = write_structure_store(
        out / "trajectories.zarr", coordinates=generated.coordinates, topology=loaded.topology,
        dims=("member", "frame", "atom", "xyz"), time_ps=np.arange(steps + 1) * lag, attrs=attrs,
    )
    if formats:
        export_structures(store, out / "exports", formats=tuple(formats))
    return store
