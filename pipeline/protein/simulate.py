"""The embedded default: alanine dipeptide (amber ff96, openmmtools' bundled files) simulated with OpenMM.

Recipe: ``AmberPrmtopFile.createSystem(nonbondedMethod=NoCutoff, constraints=HBonds,
implicitSolvent=OBC2)`` (vacuum: no implicit solvent), LangevinMiddleIntegrator at 300 K, friction
1/ps, 2 fs step; a short energy minimisation, ``equilibrate_ps`` of equilibration, then a frame every
``save_every_ps``. Each replica is an independent run seeded from ``(seed, replica)`` (integrator random
seed and initial velocities); replicas run in parallel processes. OpenMM's Reference platform is the
default for this 22-atom system (faster than the CPU platform here); CUDA is used when present.

Results are cached under ``$VELOCAST_CACHE`` (default ``~/.cache/velocast``) in ``peptide/<key>.zarr``,
keyed by every parameter that changes the frames, so a second call with the same parameters reuses them.
Each replica is also cached on its own (``peptide/replicas/<key>-r<i>/``, keyed by everything but the
replica count): a long multi-replica run that is interrupted, or rerun with more replicas, only simulates
the replicas not yet done. The recorded MD cost (``md_cpu_seconds``) is always the original cost.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.errors import UserError

RECIPE_VERSION = 1
TIMESTEP_FS = 2.0
Platform = Literal["auto", "Reference", "CPU", "CUDA", "OpenCL"]


@dataclass(frozen=True)
class PeptideSimulation:
    """Parameters of one (possibly multi-replica) alanine-dipeptide simulation."""

    ns: float = 1.0
    seed: int = 0
    vacuum: bool = False
    replicas: int = 1
    save_every_ps: float = 1.0
    equilibrate_ps: float = 20.0
    temperature_k: float = 300.0
    friction_per_ps: float = 1.0
    platform: Platform = "auto"

    def cache_key(self, platform_name: str) -> str:
        fields = {
            k: (float(v) if isinstance(getattr(PeptideSimulation(), k), float) else v)
            for k, v in asdict(self).items()
        }
        fields |= {"platform": platform_name, "recipe": RECIPE_VERSION, "timestep_fs": TIMESTEP_FS}
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def steps_per_frame(self) -> int:
        return max(1, int(round(self.save_every_ps * 1000.0 / TIMESTEP_FS)))

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.ns * 1000.0 / self.save_every_ps)))


def amber_files() -> tuple[Path, Path]:
    """(prmtop, inpcrd) of alanine dipeptide in openmmtools' data directory (imported without openmmtools)."""
    spec = importlib.util.find_spec("openmmtools")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("openmmtools is not installed; it provides the alanine-dipeptide amber files")
    base = Path(list(spec.submodule_search_locations)[0]) / "data" / "alanine-dipeptide-gbsa"
    return base / "alanine-dipeptide.prmtop", base / "alanine-dipeptide.crd"


def cache_root() -> Path:
    """``$VELOCAST_CACHE`` or ``~/.cache/velocast``."""
    return Path(os.environ.get("VELOCAST_CACHE") or Path.home() / ".cache" / "velocast")


def resolve_platform(name: Platform) -> str:
    """The OpenMM platform name to use: ``auto`` is CUDA when available, else Reference."""
    import openmm

    available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name == "auto":
        return "CUDA" if "CUDA" in available else "Reference"
    if name not in available:
        raise UserError(f"OpenMM platform {name!r} is not available here (available: {', '.join(available)})")
    return name


def build_system(*, vacuum: bool) -> tuple[Any, Any, Any]:
    """(openmm System, openmm.app Topology, positions) of alanine dipeptide, ff96 (+ OBC2 unless vacuum)."""
    from openmm import app

    prmtop_path, inpcrd_path = amber_files()
    prmtop = app.AmberPrmtopFile(str(prmtop_path))
    inpcrd = app.AmberInpcrdFile(str(inpcrd_path))
    system = prmtop.createSystem(
        nonbondedMethod=app.NoCutoff,
        constraints=app.HBonds,
        implicitSolvent=None if vacuum else app.OBC2,
    )
    return system, prmtop.topology, inpcrd.positions


def force_field_bond_lengths(system: Any, topology: Any) -> list[list[float]]:
    """Equilibrium length (nm) of every topology bond: HarmonicBondForce r0, or the constraint distance."""
    import openmm
    from openmm import unit

    lengths: dict[tuple[int, int], float] = {}
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for k in range(force.getNumBonds()):
                i, j, r0, _ = force.getBondParameters(k)
                lengths[(min(i, j), max(i, j))] = r0.value_in_unit(unit.nanometer)
    for k in range(system.getNumConstraints()):
        i, j, r0 = system.getConstraintParameters(k)
        lengths[(min(i, j), max(i, j))] = r0.value_in_unit(unit.nanometer)
    out = []
    for bond in topology.bonds():
        i, j = sorted((bond[0].index, bond[1].index))
        if (i, j) in lengths:
            out.append([i, j, lengths[(i, j)]])
    return out


def _replica_seed(seed: int, replica: int) -> int:
    """A nonzero 31-bit seed (OpenMM treats 0 as 'choose randomly')."""
    state = np.random.SeedSequence([int(seed), int(replica)]).generate_state(1)[0]
    return int(state % (2**31 - 2)) + 1


def run_replica(
    params: PeptideSimulation, replica: int, platform_name: str, report: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Run one replica; returns coordinates (frame, atom, 3) nm float32, time_ps and cost."""
    import openmm
    from openmm import unit

    cpu0, wall0 = time.process_time(), time.perf_counter()
    system, _, positions = build_system(vacuum=params.vacuum)
    integrator = openmm.LangevinMiddleIntegrator(
        params.temperature_k * unit.kelvin,
        params.friction_per_ps / unit.picosecond,
        TIMESTEP_FS * unit.femtosecond,
    )
    seed = _replica_seed(params.seed, replica)
    integrator.setRandomNumberSeed(seed)
    platform = openmm.Platform.getPlatformByName(platform_name)
    context = openmm.Context(system, integrator, platform)
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 500)
    context.setVelocitiesToTemperature(params.temperature_k * unit.kelvin, seed)
    equil_steps = int(round(params.equilibrate_ps * 1000.0 / TIMESTEP_FS))
    if equil_steps:
        integrator.step(equil_steps)
    n_frames, every = params.n_frames, params.steps_per_frame
    xyz = np.empty((n_frames, system.getNumParticles(), 3), dtype=np.float32)
    md_wall0 = time.perf_counter()
    for k in range(n_frames):
        integrator.step(every)
        state = context.getState(getPositions=True)
        xyz[k] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if report is not None:
            report(k + 1)
    md_wall = time.perf_counter() - md_wall0
    if not np.isfinite(xyz).all():
        raise RuntimeError(f"replica {replica}: simulation blew up (non-finite coordinates)")
    return {
        "coordinates": xyz,
        "time_ps": (np.arange(1, n_frames + 1) * every * TIMESTEP_FS / 1000.0),
        "cpu_seconds": time.process_time() - cpu0,
        "wall_seconds": time.perf_counter() - wall0,
        "production_wall_seconds": md_wall,
        "seed": seed,
    }


def replica_cache_dir(params: PeptideSimulation, replica: int, platform_name: str) -> Path:
    """Cache directory of one replica: keyed by every parameter except the replica count, plus its index.

    So a run with more replicas (or a rerun after an interruption) reuses the replicas already done.
    """
    from dataclasses import replace

    key = replace(params, replicas=1).cache_key(platform_name)
    return cache_root() / "peptide" / "replicas" / f"{key}-r{replica}"


def load_cached_replica(params: PeptideSimulation, replica: int, platform_name: str) -> dict[str, Any] | None:
    """The cached result of one replica (``coordinates.npy``, ``time_ps.npy``, ``meta.json``), or None."""
    folder = replica_cache_dir(params, replica, platform_name)
    if not (folder / "meta.json").is_file():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        xyz = np.load(folder / "coordinates.npy", allow_pickle=False)
        time_ps = np.load(folder / "time_ps.npy", allow_pickle=False)
    except (OSError, ValueError):
        return None  # a damaged entry is recomputed
    if xyz.shape[0] != params.n_frames:
        return None
    return {"coordinates": xyz, "time_ps": time_ps, **meta, "from_cache": True}


def run_and_cache_replica(
    params: PeptideSimulation, replica: int, platform_name: str, report: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """:func:`run_replica`, then store the result in the per-replica cache (atomically)."""
    result = run_replica(params, replica, platform_name, report)
    folder = replica_cache_dir(params, replica, platform_name)
    from pipeline.files import clean_stale, temp_beside

    clean_stale(folder)
    tmp = temp_beside(folder, directory=True)
    np.save(tmp / "coordinates.npy", result["coordinates"], allow_pickle=False)
    np.save(tmp / "time_ps.npy", result["time_ps"], allow_pickle=False)
    meta = {k: v for k, v in result.items() if k not in ("coordinates", "time_ps")}
    (tmp / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return {**result, "from_cache": False}


def _replica_worker(
    params: PeptideSimulation, replica: int, platform_name: str, queue: Any
) -> dict[str, Any]:
    last = [0.0]

    def report(done: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 0.25 or done == params.n_frames:
            last[0] = now
            queue.put((replica, done))

    return run_and_cache_replica(params, replica, platform_name, report)


def simulate_peptide(
    *,
    params: PeptideSimulation,
    out: str | Path | None = None,
    processes: int | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> Path:
    """Run (or reuse from the cache) the simulation, write it as a structure store; returns the store path.

    With ``out`` the cached store is copied there (atomically); without, the cache path is returned.
    """
    platform_name = resolve_platform(params.platform)
    if params.ns <= 0 or params.replicas < 1 or params.save_every_ps <= 0:
        raise UserError("--ns and --save-every-ps must be > 0 and --replicas >= 1")
    cached = cache_root() / "peptide" / f"{params.cache_key(platform_name)}.zarr"
    if not (use_cache and _valid_store(cached)):
        _simulate_to(
            cached,
            params=params,
            platform_name=platform_name,
            processes=processes,
            progress=progress,
            use_cache=use_cache,
        )
    if out is None:
        return cached
    from pipeline.protein.store import _replace, _tmp_beside

    out = Path(out)
    tmp = _tmp_beside(out)
    shutil.copytree(cached, tmp, dirs_exist_ok=True)
    _replace(tmp, out)
    return out


def _valid_store(path: Path) -> bool:
    try:
        from pipeline.protein.store import open_structure_store

        open_structure_store(path)
        return True
    except UserError:
        return False


def _simulate_to(
    path: Path,
    *,
    params: PeptideSimulation,
    platform_name: str,
    processes: int | None,
    progress: bool,
    use_cache: bool,
) -> None:
    import mdtraj

    from pipeline.console import make_progress
    from pipeline.protein.store import StructureStoreWriter
    from pipeline.provenance import provenance_record

    system, omm_topology, _ = build_system(vacuum=params.vacuum)
    topology = mdtraj.Topology.from_openmm(omm_topology)
    wall0 = time.perf_counter()
    results: list[dict[str, Any] | None] = [
        load_cached_replica(params, r, platform_name) if use_cache else None for r in range(params.replicas)
    ]
    missing = [r for r, res in enumerate(results) if res is None]
    n_workers = max(1, min(len(missing), processes or os.cpu_count() or 1))
    total = params.n_frames * params.replicas
    with make_progress(transient=not progress) as bar:
        task = bar.add_task(
            f"MD {params.ns:g} ns × {params.replicas} "
            f"({'vacuum' if params.vacuum else 'OBC2'}, {platform_name})",
            total=total,
            visible=progress,
        )
        base = (params.replicas - len(missing)) * params.n_frames  # frames reused from the replica cache
        bar.update(task, completed=base)
        if n_workers == 1:
            for r in missing:
                results[r] = run_and_cache_replica(
                    params, r, platform_name, lambda done, base=base: bar.update(task, completed=base + done)
                )
                base += params.n_frames
        else:
            for r, res in zip(
                missing, _run_parallel(params, missing, platform_name, n_workers, bar, task, base)
            ):
                results[r] = res
    wall = time.perf_counter() - wall0
    done = [r for r in results if r is not None]
    assert len(done) == params.replicas
    results = done
    cpu = float(sum(r["cpu_seconds"] for r in results))  # original cost, also for cached replicas
    prod_wall = float(sum(r["production_wall_seconds"] for r in results))
    simulated_ns = params.ns * params.replicas
    with StructureStoreWriter(path, topology=topology, chunk_frames=min(params.n_frames, 5000)) as writer:
        for r in results:
            writer.start_trajectory()
            writer.append(r["coordinates"], r["time_ps"])
        writer.attrs.update(
            time_step_ps=params.steps_per_frame * TIMESTEP_FS / 1000.0,
            sources=[builtin_source_string(params)],
            md_cpu_seconds=cpu,
            bond_lengths_nm=force_field_bond_lengths(system, omm_topology),
            provenance=provenance_record(
                source="builtin:alanine-dipeptide",
                recipe={
                    **asdict(params),
                    "platform": platform_name,
                    "timestep_fs": TIMESTEP_FS,
                    "force_field": "amber ff96 (openmmtools alanine-dipeptide-gbsa prmtop)",
                    "solvent": "vacuum" if params.vacuum else "OBC2 implicit",
                    "constraints": "HBonds",
                    "integrator": "LangevinMiddleIntegrator",
                    "recipe_version": RECIPE_VERSION,
                },
                replica_seeds=[r["seed"] for r in results],
                md_cpu_seconds=cpu,
                wall_seconds=wall,
                ns_per_day_per_replica=simulated_ns / (prod_wall / 86400.0) if prod_wall > 0 else None,
                ns_per_cpu_day=simulated_ns / (cpu / 86400.0) if cpu > 0 else None,
                processes=n_workers,
                replicas_from_cache=sum(bool(r.get("from_cache")) for r in results),
            ),
        )
        writer.commit()


def _run_parallel(
    params: PeptideSimulation,
    replicas: list[int],
    platform_name: str,
    n_workers: int,
    bar: Any,
    task: Any,
    base: int,
) -> list[dict]:
    """Run ``replicas`` in ``n_workers`` spawned processes (each caches its result); results in order."""
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
        q = manager.Queue()
        futures = [pool.submit(_replica_worker, params, r, platform_name, q) for r in replicas]
        done_by_replica = dict.fromkeys(replicas, 0)
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.3)
            while True:
                try:
                    replica, done = q.get_nowait()
                except queue_mod.Empty:
                    break
                done_by_replica[replica] = done
            bar.update(task, completed=base + sum(done_by_replica.values()))
        return [f.result() for f in futures]


def builtin_source_string(params: PeptideSimulation) -> str:
    """``builtin:alanine-dipeptide?ns=…&seed=…`` naming these parameters (parsed by :func:`parse_builtin`)."""
    defaults = PeptideSimulation()
    parts = [
        f"{k}={_fmt(v)}"
        for k, v in asdict(params).items()
        if k in ("ns", "seed") or getattr(defaults, k) != v
    ]
    return "builtin:alanine-dipeptide?" + "&".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_builtin(source: str) -> PeptideSimulation:
    """Parse ``builtin:alanine-dipeptide?ns=5&seed=0&vacuum=1&replicas=2&save_every_ps=1``."""
    from urllib.parse import parse_qsl

    name, _, query = source.removeprefix("builtin:").partition("?")
    if name != "alanine-dipeptide":
        raise UserError(f"unknown builtin source {source!r}; the only one is builtin:alanine-dipeptide")
    fields = {f: type(v) for f, v in asdict(PeptideSimulation()).items()}
    values: dict[str, Any] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        key = key.replace("-", "_")
        if key not in fields:
            raise UserError(f"unknown parameter {key!r} in {source!r} (known: {', '.join(fields)})")
        try:
            kind = fields[key]
            values[key] = raw.lower() in ("1", "true", "yes") if kind is bool else kind(raw)
        except ValueError:
            raise UserError(f"bad value {raw!r} for {key} in {source!r}") from None
    return PeptideSimulation(**values)
