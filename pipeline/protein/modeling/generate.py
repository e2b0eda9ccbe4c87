"""``velocast sample protein`` and ``velocast forecast protein``: conformations and trajectory forecasts,
written as structure stores plus PDB/XTC/DCD exports.

Output layout (``--out DIR``)::

    DIR/samples.zarr | DIR/trajectories.zarr   structure store (sample|member, frame, atom, xyz), nm
    DIR/exports/                               topology.pdb + PDB (≤ 1000 models), XTC, DCD per group

``samples_per_cpu_second`` is measured with the process CPU clock (all threads) around the sampling
loop, the same clock the MD cost is recorded with, and stored in the output's attributes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from models.distillation import recorded_sampler
from models.randomness import Stream, Streams
from models.samplers import Denoiser, sample
from pipeline.config import StrictModel
from pipeline.console import make_progress
from pipeline.protein.export import Format, export_structures
from pipeline.protein.modeling.model import ProteinModel, load_protein_model
from pipeline.protein.store import open_structure_store, write_structure_store
from pipeline.provenance import file_sha256, provenance_record

Progress = Callable[[int], None]


class _SampleStreams:
    """The start noise and a stochastic sampler's noise of one run, each its own stream of ``seed``."""

    def __init__(self, seed: int) -> None:
        streams = Streams(seed)
        self.noise = streams.generator(Stream.NOISE)
        self.sampler = streams.generator(Stream.SAMPLER)


@torch.no_grad()
def _draw(model: ProteinModel, n: int, *, condition: torch.Tensor | None, sampler: str, steps: int,
          streams: _SampleStreams) -> tuple[np.ndarray, int]:
    noise = torch.randn(n, model.dim, generator=streams.noise)
    denoiser = Denoiser(model.net, model.objective, condition=condition)
    result = sample(denoiser, noise, sampler=sampler, steps=steps, generator=streams.sampler)
    return result.samples.numpy(), result.nfe


@dataclass(frozen=True)
class Generated:
    """Coordinates in nm, the CPU seconds spent, and the network calls per sample (or per step)."""

    coordinates: np.ndarray
    cpu_seconds: float
    nfe: int


def sample_conformations(model: ProteinModel, *, n: int, sampler: str = "heun", steps: int = 16, seed: int = 0,
                         batch_size: int = 4096, on_batch: Progress | None = None) -> Generated:
    """``n`` independent conformations ``(n, N, 3)`` from an ensemble model."""
    if model.task != "ensemble":
        raise ValueError(f"this is a {model.task} model; sample conformations with an ensemble model")
    streams = _SampleStreams(seed)
    start = time.process_time()
    parts, nfe = [], 0
    for begin in range(0, n, batch_size):
        drawn, nfe = _draw(model, min(batch_size, n - begin), condition=None, sampler=sampler, steps=steps,
                           streams=streams)
        parts.append(drawn)
        if on_batch is not None:
            on_batch(len(drawn))
    coordinates = model.featuriser.decode(np.concatenate(parts))
    return Generated(coordinates=coordinates, cpu_seconds=time.process_time() - start, nfe=nfe)


def forecast_trajectories(model: ProteinModel, *, start: np.ndarray, steps: int, members: int,
                          sampler: str = "heun", sampler_steps: int = 16, seed: int = 0,
                          on_step: Progress | None = None) -> Generated:
    """``members`` trajectories ``(M, steps + 1, N, 3)`` from ``start`` (N, 3) nm, one lag per step."""
    if model.task != "forecast":
        raise ValueError(f"this is a {model.task} model; forecast trajectories with a forecast model")
    streams = _SampleStreams(seed)
    begin = time.process_time()
    first = model.featuriser.encode(np.asarray(start, dtype=np.float64)[None])
    current = torch.from_numpy(np.repeat(first, members, axis=0))
    path, nfe = [current.numpy()], 0
    for _ in range(steps):
        drawn, nfe = _draw(
            model, members, condition=current, sampler=sampler, steps=sampler_steps, streams=streams
        )
        current = torch.from_numpy(drawn)
        path.append(drawn)
        if on_step is not None:
            on_step(1)
    z = np.stack(path, axis=1)  # (M, steps + 1, 3N)
    return Generated(
        coordinates=model.featuriser.decode(z), cpu_seconds=time.process_time() - begin, nfe=nfe
    )


def generation_attrs(model: ProteinModel, generated: Generated, *, command: str, settings: dict) -> dict:
    """Store attributes: cost figures and provenance (checkpoint hash, data, settings)."""
    n = generated.coordinates.shape[0] * (
        generated.coordinates.shape[1] - 1 if model.task == "forecast" else 1
    )
    rate = n / max(generated.cpu_seconds, 1e-9)
    return {
        "samples_per_cpu_second": rate,
        "cpu_seconds": generated.cpu_seconds,
        "network_calls_per_sample": generated.nfe,
        "provenance": provenance_record(
            source=command,
            config=settings,
            samples_per_cpu_second=rate,
            checkpoint=f"sha256:{file_sha256(model.checkpoint / 'weights.safetensors')}",
            data_snapshot=model.metadata.get("data"),
        ),
    }


class SampleConfig(StrictModel):
    """Options of ``velocast sample protein``."""

    model: str = Field(description="ensemble model: run directory (newest checkpoint) or checkpoint directory")
    n: int = Field(10000, ge=1, description="number of conformations")
    sampler: str | None = Field(None, description="euler, heun, midpoint, dpmpp_2s or churn (default: the model's "
                                                  "own, else heun)")
    steps: int | None = Field(None, ge=1, description="sampler steps (default: the model's own, else 16)")
    seed: int = Field(0, description="noise seed")
    formats: list[Format] = Field(["pdb", "xtc", "dcd"], description="export formats (pdb, xtc, dcd, h5)")


class ForecastConfig(StrictModel):
    """Options of ``velocast forecast protein``."""

    model: str = Field(description="forecast model: run directory (newest checkpoint) or checkpoint directory")
    start: str = Field(description="start structure: STORE.zarr[:FRAME] or a file mdtraj reads")
    steps: int = Field(ge=1, description="number of lags τ to roll out")
    members: int = Field(8, ge=1, description="independent trajectories")
    sampler: str | None = Field(None, description="default: the model's own, else heun")
    sampler_steps: int | None = Field(None, ge=1, description="sampler steps per lag (default: the model's own, "
                                                              "else 16)")
    seed: int = Field(0, description="noise seed")
    formats: list[Format] = Field(["pdb", "xtc", "dcd"], description="export formats (pdb, xtc, dcd, h5)")




def sample_protein(config: SampleConfig, *, out: str | Path, progress: bool = True) -> Path:
    """Draw ``config.n`` conformations into ``out/samples.zarr`` and export them; returns the store path.

    The sampler and its steps default to the checkpoint's own (a distilled student's), else heun × 16."""
    loaded = load_protein_model(config.model)
    sampler, steps = recorded_sampler(loaded.metadata, config.sampler, config.steps, default=("heun", 16))
    n, seed = config.n, config.seed
    with make_progress(enabled=progress) as bar:
        task = bar.add_task("sample", total=n)
        generated = sample_conformations(loaded, n=n, sampler=sampler, steps=steps, seed=seed,
                                         on_batch=lambda k: bar.advance(task, k))
    out = Path(out)
    settings = {**config.model_dump(mode="json"), "sampler": sampler, "steps": steps}
    store = write_structure_store(
        out / "samples.zarr", coordinates=generated.coordinates[:, None], topology=loaded.topology,
        dims=("sample", "frame", "atom", "xyz"),
        attrs=generation_attrs(loaded, generated, command="velocast sample protein", settings=settings),
    )
    if config.formats:
        export_structures(store, out / "exports", formats=tuple(config.formats))
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


def forecast_protein(config: ForecastConfig, *, out: str | Path, progress: bool = True) -> Path:
    """Roll ``config.members`` trajectories of ``config.steps`` lags into ``out/trajectories.zarr`` and export
    them. The sampler and its steps default to the checkpoint's own, else heun × 16."""
    loaded = load_protein_model(config.model)
    sampler, sampler_steps = recorded_sampler(loaded.metadata, config.sampler, config.sampler_steps,
                                              default=("heun", 16))
    steps, members, seed = config.steps, config.members, config.seed
    first = start_frame(config.start)
    if first.shape != (loaded.topology.n_atoms, 3):
        raise ValueError(f"the start structure has {first.shape[0]} atoms, the model {loaded.topology.n_atoms}")
    with make_progress(enabled=progress) as bar:
        task = bar.add_task("forecast", total=steps)
        generated = forecast_trajectories(loaded, start=first, steps=steps, members=members, sampler=sampler,
                                          sampler_steps=sampler_steps, seed=seed,
                                          on_step=lambda k: bar.advance(task, k))
    out = Path(out)
    settings = {**config.model_dump(mode="json"), "sampler": sampler, "sampler_steps": sampler_steps}
    attrs = generation_attrs(loaded, generated, command="velocast forecast protein", settings=settings)
    lag = float(loaded.metadata["lag_ps"])
    attrs["time_step_ps"] = lag
    store = write_structure_store(
        out / "trajectories.zarr", coordinates=generated.coordinates, topology=loaded.topology,
        dims=("member", "frame", "atom", "xyz"), time_ps=np.arange(steps + 1) * lag, attrs=attrs,
    )
    if config.formats:
        export_structures(store, out / "exports", formats=tuple(config.formats))
    return store
