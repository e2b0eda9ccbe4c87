"""The fault zoo: bad inputs, damaged stores, full and read-only disks, a loaded service and kill -9 of real
writers, each through the real ``velocast`` command; prints the table and writes JSON.

    python tests/benchmarks/bench_faults.py [--kills 5] [--only SUBSTRING] [--out bench_faults.json]

Every case runs ``python -m pipeline ...`` in its own directory, on inputs this script makes (SYNTHETIC
weather and alanine-dipeptide data, corrupted copies, ``../shared/data`` files where present). A case is
scored by what the user sees:

* **clear**: a bad input refused with exit 2 and one line on stderr (containing the expected words);
* **unclear**: refused with exit 2 but on several lines or in other words;
* **traceback**: a Python traceback on stdout or stderr;
* **silent**: a bad input accepted (exit 0);
* **refused**: a valid but unusual input refused;
* **leftover**: a refused run changed something on disk (a half output, a temporary), or an accepted run
  left a temporary;
* **crash**: killed by a signal, another exit status, a timeout, or a server that stopped answering.

Full and read-only disks are real tmpfs mounts (root only; skipped otherwise). The kill runs SIGKILL a real
writer at a random moment, rerun it, and count lost or torn outputs, leftovers and reruns that differ from an
uninterrupted run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
COLUMNS = ("clear", "unclear", "traceback", "silent", "refused", "leftover", "crash")
BAD = ("unclear", "traceback", "silent", "refused", "leftover", "crash")


# ---------------------------------------------------------------- the workspace: inputs made once

class Workspace:
    """Inputs shared by the cases (SYNTHETIC data), built on first use under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        (base / "inputs").mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.base / "inputs" / name

    def recipe(self, folder: Path, sources: list, variables: dict | None = None, name: str = "recipe.yaml",
               **extra) -> Path:
        import yaml

        doc = {"sources": [s if isinstance(s, dict) else {"path": str(s)} for s in sources],
               "variables": variables or {"temperature": {"levels": [500, 850]}, "2m_temperature": {}}, **extra}
        path = folder / name
        path.write_text(yaml.safe_dump(doc))
        return path

    def netcdf(self, folder: Path, name: str = "era5.nc", edit: Callable | None = None, **shape) -> Path:
        """A SYNTHETIC ERA5-like NetCDF (``edit(ds) -> ds`` to damage it)."""
        from tests.pipeline.weather.synthetic import era5_like

        ds = era5_like(**{"times": 12, **shape})
        if edit is not None:
            ds = edit(ds)
        path = folder / name
        ds.to_netcdf(path)
        return path

    @cached_property
    def good_nc(self) -> Path:
        return self.netcdf(self.path(""), "good.nc", times=40)

    @cached_property
    def big_nc(self) -> Path:
        return self.netcdf(self.path(""), "big.nc", times=160, nlat=32, nlon=64)

    @cached_property
    def train_store(self) -> Path:
        from pipeline.weather.ingest import ingest
        from pipeline.weather.recipe import load_recipe

        out = self.path("train.zarr")
        ingest(load_recipe(self.recipe(self.path(""), [self.good_nc], name="good.yaml")), out, progress=False)
        return out

    @cached_property
    def tiny_config(self) -> Path:
        import yaml

        from tests.pipeline.weather.modeling.conftest import tiny_config

        doc = tiny_config(str(self.train_store), 4).model_dump(mode="json")
        doc["train"]["threads"] = 1
        path = self.path("tiny.yaml")
        path.write_text(yaml.safe_dump(doc))
        return path

    @cached_property
    def model(self) -> Path:
        out = self.path("model")
        run(["train", "weather", "--config", str(self.tiny_config), "--out", str(out), "--no-progress"],
            cwd=self.base, check=True)
        return out

    @cached_property
    def forecast_store(self) -> Path:
        from pipeline.forecast_store import ChunkSpec, ForecastStore, synthetic_forecast

        path = self.path("forecast.icechunk")
        store = ForecastStore.create(path, chunks=ChunkSpec(lead_block=3, tile_lat=4, tile_lon=8))
        for init in ("2020-01-01T00", "2020-01-01T06"):
            store.append_cycle(synthetic_forecast(init, members=5, leads=4, grid=(16, 9), levels=(500, 850)),
                               provenance={"source": "synthetic", "config": {}, "checkpoint": None,
                                           "data_snapshot": None})
        return path

    @cached_property
    def pdb(self) -> Path:
        from pipeline.protein.simulate import amber_files

        return amber_files()[0].with_suffix(".pdb")

    @cached_property
    def traj(self):
        import mdtraj
        import numpy as np

        base = mdtraj.load(str(self.pdb))
        xyz = base.xyz + np.random.default_rng(0).normal(scale=0.01, size=(12, base.n_atoms, 3)).astype("f4")
        return mdtraj.Trajectory(xyz, base.topology, time=np.arange(12) * 2.0)

    @cached_property
    def dcd(self) -> Path:
        path = self.path("ala.dcd")
        self.traj.save(str(path))
        return path

    @cached_property
    def protein_store(self) -> Path:
        from pipeline.protein.ingest import ingest_protein

        return ingest_protein(traj=[str(self.dcd)], top=self.pdb, out=self.path("protein.zarr"), progress=False)


# ---------------------------------------------------------------- running and scoring

def with_flag(args: list[str], flag: str, value: str) -> list[str]:
    """``args`` with the value after ``flag`` replaced (or the flag appended)."""
    args = list(args)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    return args


def run(args: list[str], *, cwd: Path, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess[str]:
    """``velocast ARGS`` in a child process."""
    try:
        done = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, check=False, capture_output=True,
                              text=True, timeout=timeout, env=ENV)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(args, -999, exc.stdout or "", f"timed out after {timeout} s")
    if check and done.returncode != 0:
        raise RuntimeError(f"velocast {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder`` with its size and modification time, and every folder (existence only: a
    temporary created and removed again changes its folder's time, not what it holds)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames:
            found[str((Path(dirpath) / name).relative_to(folder))] = (-1, 0)
        for name in filenames:
            path = Path(dirpath) / name
            with contextlib.suppress(OSError):
                stat = path.lstat()
                found[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return found


def temporaries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.tmp-*"))


@dataclass
class Case:
    name: str
    group: str
    build: Callable[[Workspace, Path], list[str]]
    expect: Literal["refuse", "accept"] = "refuse"
    needle: str | None = None  # words the one line must contain
    needs: Literal["root", "shared"] | None = None


@dataclass
class Outcome:
    name: str
    group: str
    verdict: str
    exit: int
    line: str
    seconds: float
    detail: str = ""
    stderr: str = ""


LOG_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\]\s+(INFO|DEBUG)\b")


def message_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not informational log records (``[12:00:00] INFO …`` and the lines a
    record wraps onto): what a user must read to know what went wrong."""
    lines, in_log = [], False
    for line in stderr.splitlines():
        if LOG_LINE.match(line):
            in_log = True
            continue
        if in_log and line.startswith("           "):
            continue
        in_log = False
        if line.strip():
            lines.append(line)
    return lines


def score(case: Case, done: subprocess.CompletedProcess[str], changed: list[str], temps: list[str]) -> tuple[str, str]:
    text = done.stdout + done.stderr
    lines = message_lines(done.stderr)
    if "Traceback (most recent call last)" in text or "panicked at" in text:
        return "traceback", lines[-1] if lines else ""
    if done.returncode not in (0, 2):
        return "crash", f"exit {done.returncode}"
    if case.expect == "accept":
        if done.returncode != 0:
            return "refused", lines[-1] if lines else ""
        return ("leftover", f"temporaries: {temps}") if temps else ("clear", "")
    if done.returncode == 0:
        return "silent", "exit 0"
    if changed:
        return "leftover", f"changed: {changed[:4]}"
    if len(lines) != 1 or (case.needle is not None and case.needle not in lines[0]):
        return "unclear", f"{len(lines)} lines; expected {case.needle!r}"
    return "clear", ""


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        raise PermissionError(done.stderr.decode().strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


MOUNTS: dict[str, str] = {}  # case name -> tmpfs options for the case's "disk" folder


def run_case(ws: Workspace, case: Case, folder: Path) -> Outcome:
    folder.mkdir(parents=True)
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        if case.name in MOUNTS:
            stack.enter_context(tmpfs(folder / "disk", MOUNTS[case.name]))
        args = case.build(ws, folder)
        before = listing(ws.base)
        done = run(args, cwd=folder, timeout=300)
        after = listing(ws.base)
        changed = sorted(k for k in set(before) | set(after)
                         if before.get(k) != after.get(k) and not k.endswith("velocast-commit.lock"))
        temps = temporaries(ws.base)
        verdict, detail = score(case, done, changed, temps)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return Outcome(case.name, case.group, verdict, done.returncode, lines[-1][:200] if lines else "",
                   time.monotonic() - start, detail, done.stderr[-3000:] if verdict != "clear" else "")


# ---------------------------------------------------------------- the cases

def ingest_case(edit: Callable | None = None, variables: dict | None = None, **recipe_extra) -> Callable:
    def build(ws: Workspace, folder: Path) -> list[str]:
        source = ws.netcdf(folder, edit=edit)
        recipe = ws.recipe(folder, [source], variables, **recipe_extra)
        return ["ingest", "weather", str(recipe), "--out", str(folder / "out.zarr"), "--no-progress"]
    return build


def set_value(name: str, value: float, level: int | None = None, index: tuple = (3, 2, 5)) -> Callable:
    def edit(ds):
        ds = ds.copy(deep=True)
        da = ds[name]
        if "level" in da.dims:
            da.loc[{"level": level or 850}][index] = value
        else:
            da[index] = value
        return ds
    return edit


def cut_file(source: Path, target: Path, fraction: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def weather_cases() -> list[Case]:
    def scaled(name, factor, offset=0.0):
        def edit(ds):
            ds = ds.copy(deep=True)
            ds[name] = ds[name] * factor + offset
            ds[name].attrs["units"] = ds[name].attrs.get("units", "")
            return ds
        return edit

    def relabel(name, units):
        def edit(ds):
            ds = ds.copy(deep=True)
            ds[name].attrs["units"] = units
            return ds
        return edit

    def celsius_as_kelvin(ds):
        ds = ds.copy(deep=True)
        ds["t2m"] = ds["t2m"] - 273.15 + 0 * ds["t2m"]
        ds["t2m"] = ds["t2m"] - ds["t2m"].mean() + 8.0  # values around 8 "K"
        ds["t2m"].attrs["units"] = "K"
        return ds

    def shuffled(ds):
        return ds.isel(time=[0, 2, 1, *range(3, ds.sizes["time"])])

    def duplicated(ds):
        return ds.isel(time=[0, 1, 1, *range(2, ds.sizes["time"])])

    def truncated_nc(ws, folder):
        source = cut_file(ws.netcdf(folder, "whole.nc"), folder / "cut.nc", 0.6)
        return ["ingest", "weather", str(ws.recipe(folder, [source])), "--out", str(folder / "out.zarr")]

    def garbage(ws, folder):
        (folder / "noise.nc").write_bytes(os.urandom(4096))
        return ["ingest", "weather", str(ws.recipe(folder, [folder / "noise.nc"])), "--out", str(folder / "out.zarr")]

    def empty(ws, folder):
        (folder / "empty.nc").write_bytes(b"")
        return ["ingest", "weather", str(ws.recipe(folder, [folder / "empty.nc"])), "--out", str(folder / "out.zarr")]

    def grib(name, fraction=None, member=0, variables=None):
        def build(ws, folder):
            source = SHARED / name
            if fraction is not None:
                source = cut_file(source, folder / "cut.grib", fraction)
            recipe = ws.recipe(folder, [{"path": str(source), "member": member}] if member is not None else [source],
                               variables or {"temperature": {"levels": [500, 850]}})
            return ["ingest", "weather", str(recipe), "--out", str(folder / "out.zarr"), "--no-progress"]
        return build

    def recipe_text(text):
        def build(ws, folder):
            (folder / "recipe.yaml").write_text(text)
            return ["ingest", "weather", str(folder / "recipe.yaml"), "--out", str(folder / "out.zarr")]
        return build

    def recipe_dir(ws, folder):
        (folder / "recipe.yaml").mkdir()
        return ["ingest", "weather", str(folder / "recipe.yaml"), "--out", str(folder / "out.zarr")]

    def missing_source(ws, folder):
        return ["ingest", "weather", str(ws.recipe(folder, [folder / "nope.nc"])), "--out", str(folder / "out.zarr")]

    def out_below_file(ws, folder):
        (folder / "afile").write_text("x")
        return ["ingest", "weather", str(ws.recipe(folder, [ws.good_nc])), "--out", str(folder / "afile" / "o.zarr")]

    def out_exists(ws, folder):
        (folder / "out.zarr").mkdir()
        (folder / "out.zarr" / "keep.txt").write_text("mine")
        return ["ingest", "weather", str(ws.recipe(folder, [ws.good_nc])), "--out", str(folder / "out.zarr")]

    def out_on(disk_file):
        def build(ws, folder):
            return ["ingest", "weather", str(ws.recipe(folder, [ws.big_nc])), "--out", str(folder / "disk" / disk_file),
                    "--no-progress"]
        return build

    def lon_180(ws, folder):
        source = ws.netcdf(folder, lon_180=True, lat_descending=False)
        return ["ingest", "weather", str(ws.recipe(folder, [source])), "--out", str(folder / "out.zarr"),
                "--no-progress"]

    def odd_grid(ws, folder):
        return ["ingest", "weather", str(ws.recipe(folder, [ws.netcdf(folder, nlat=33, nlon=49)])),
                "--out", str(folder / "out.zarr"), "--no-progress"]

    def unicode_path(ws, folder):
        sub = folder / "Daten-ÄÖÜ-天気"
        sub.mkdir()
        return ["ingest", "weather", str(ws.recipe(sub, [ws.netcdf(sub)])), "--out", str(sub / "out.zarr"),
                "--no-progress"]

    MOUNTS.update({"ingest: output on a read-only file system": "ro,size=64k",
                   "ingest: disk full while writing the store": "size=512k"})
    return [
        Case("ingest: variable missing", "weather", ingest_case(variables={"specific_humidity": {"levels": [500]}}),
             needle="specific_humidity"),
        Case("ingest: level missing", "weather", ingest_case(variables={"temperature": {"levels": [300]}}), needle="300"),
        Case("ingest: NaN in a field", "weather", ingest_case(set_value("t", float("nan"))), needle="NaN"),
        Case("ingest: +inf in a field", "weather", ingest_case(set_value("t", float("inf"))), needle="infinite"),
        Case("ingest: -inf in a field", "weather", ingest_case(set_value("t2m", float("-inf"))), needle="infinite"),
        Case("ingest: 1e30 fill value", "weather", ingest_case(set_value("t", 1e30)), needle="fill value"),
        Case("ingest: °C labelled K", "weather", ingest_case(celsius_as_kelvin), needle="°C"),
        Case("ingest: geopotential height labelled m2 s-2", "weather", ingest_case(scaled("z", 1 / 9.80665), {"geopotential": {"levels": [500]}}),
             needle="geopotential height"),
        Case("ingest: unknown units", "weather", ingest_case(relabel("t", "furlongs")), needle="furlongs"),
        Case("ingest: times out of order", "weather", ingest_case(shuffled), needle="not sorted"),
        Case("ingest: duplicated times", "weather", ingest_case(duplicated), needle="duplicate"),
        Case("ingest: truncated NetCDF", "weather", truncated_nc, needle="cut.nc"),
        Case("ingest: random bytes as NetCDF", "weather", garbage, needle="noise.nc"),
        Case("ingest: empty file", "weather", empty, needle="empty.nc"),
        Case("ingest: GRIB cut mid-message (1/3)", "weather", grib("era5-levels-members.grib", 1 / 3),
             needle="truncated GRIB", needs="shared"),
        Case("ingest: GRIB cut mid-message (99.9 %)", "weather", grib("era5-levels-members.grib", 0.999),
             needle="truncated GRIB", needs="shared"),
        Case("ingest: corrupt GRIB", "weather", grib("grib-zoo/era5-levels-corrupted.grib"), needle="corrupt GRIB",
             needs="shared"),
        Case("ingest: GRIB ensemble without member", "weather", grib("era5-levels-members.grib", member=None),
             needle="member", needs="shared"),
        Case("ingest: recipe not YAML", "weather", recipe_text("sources: [unclosed\n"), needle="YAML"),
        Case("ingest: recipe with a typo'd key", "weather", recipe_text("sources: []\nvariabels: {}\n"),
             needle="variabels"),
        Case("ingest: recipe is a directory", "weather", recipe_dir, needle="directory"),
        Case("ingest: source file missing", "weather", missing_source, needle="nope.nc"),
        Case("ingest: output below a regular file", "weather", out_below_file, needle="is a file"),
        Case("ingest: output exists (no --overwrite)", "weather", out_exists, needle="--overwrite"),
        Case("ingest: output on a read-only file system", "weather", out_on("o.zarr"), needle="read-only",
             needs="root"),
        Case("ingest: disk full while writing the store", "weather", out_on("o.zarr"), needle="space", needs="root"),
        Case("ingest: longitudes -180..180, latitudes ascending", "weather", lon_180, expect="accept"),
        Case("ingest: odd grid 33 × 49", "weather", odd_grid, expect="accept"),
        Case("ingest: non-ASCII directory", "weather", unicode_path, expect="accept"),
        Case("ingest: regular Gaussian GRIB", "weather",
             grib("grib-zoo/regular_gg_sfc.grib", member=None, variables={"10m_u_component_of_wind": {}}),
             expect="accept", needs="shared"),
    ]


def training_cases() -> list[Case]:
    def train(data: Callable[[Workspace, Path], str], *extra: str, out: str = "run") -> Callable:
        def build(ws, folder):
            return ["train", "weather", "--config", str(ws.tiny_config), "--data", data(ws, folder),
                    "--out", str(folder / out), "--no-progress", *extra]
        return build

    def a_file(ws, folder):
        (folder / "data.zarr").write_text("x")
        return str(folder / "data.zarr")

    def below_file(ws, folder):
        (folder / "afile").write_text("x")
        return train(lambda w, g: str(w.train_store), out="afile/run")(ws, folder)

    def config_dir(ws, folder):
        (folder / "c.yaml").mkdir()
        return ["train", "weather", "--config", str(folder / "c.yaml"), "--out", str(folder / "run")]

    MOUNTS.update({"train: disk full while checkpointing": "size=48k",
                   "train: run directory on a read-only file system": "ro,size=64k"})
    return [
        Case("train: --data missing", "training", train(lambda ws, f: str(f / "nope.zarr")), needle="nope.zarr"),
        Case("train: --data a regular file", "training", train(a_file), needle="data.zarr"),
        Case("train: --data a forecast store", "training", train(lambda ws, f: str(ws.forecast_store)),
             needle="forecast"),
        Case("train: --data a protein store", "training", train(lambda ws, f: str(ws.protein_store)), needle="protein"),
        Case("train: --out missing", "training", lambda ws, f: ["train", "weather", "--config", str(ws.tiny_config)],
             needle="Missing option '--out'"),
        Case("train: an option that does not exist", "training",
             lambda ws, f: ["train", "weather", "--lr", "1e-3", "--out", str(f / "run")], needle="--lr"),
        Case("train: --config a directory", "training", config_dir, needle="directory"),
        Case("train: unknown --set field", "training", train(lambda ws, f: str(ws.train_store), "--set", "train.lrr=1"),
             needle="lrr"),
        Case("train: negative --steps", "training", train(lambda ws, f: str(ws.train_store), "--steps", "-3"),
             needle="steps"),
        Case("train: run directory below a file", "training", below_file, needle="is a file"),
        Case("train: disk full while checkpointing", "training", train(lambda ws, f: str(ws.train_store),
                                                                       out="disk/run"), needle="space", needs="root"),
        Case("train: run directory on a read-only file system", "training",
             train(lambda ws, f: str(ws.train_store), out="disk/run"), needle="read-only", needs="root"),
    ]


def damaged_model(kind: str) -> Callable:
    def build(ws: Workspace, folder: Path) -> list[str]:
        model = folder / "model"
        shutil.copytree(ws.model, model)
        ckpt = max((model / "checkpoints").glob("step_*"))
        weights = ckpt / "weights.safetensors"
        if kind == "nan":
            import torch
            from safetensors.torch import load_file, save_file

            tensors = load_file(str(weights))
            save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                       for k, v in tensors.items()}, str(weights), metadata={"format": "velocast-checkpoint/1"})
            state = json.loads((ckpt / "state.json").read_text())
            import hashlib

            state["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
            (ckpt / "state.json").write_text(json.dumps(state))
        elif kind == "flipped":
            blob = bytearray(weights.read_bytes())
            blob[-3] ^= 0x10
            weights.write_bytes(bytes(blob))
        elif kind == "no state":
            for old in sorted((model / "checkpoints").glob("step_*")):
                (old / "state.json").unlink()
        elif kind == "pickle":
            import pickle

            for old in sorted((model / "checkpoints").glob("step_*")):
                shutil.rmtree(old)
            (model / "model.pt").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
            return forecast_args(ws, folder, model / "model.pt")
        elif kind == "empty":
            shutil.rmtree(model)
            model.mkdir()
        return forecast_args(ws, folder, model)
    return build


def forecast_args(ws: Workspace, folder: Path, model: Path, out: str = "fc.icechunk", *extra: str) -> list[str]:
    return ["forecast", "weather", "--model", str(model), "--data", str(ws.train_store), "--init-times",
            "2020-01-08T00", "--members", "2", "--lead", "12h", "--steps", "2", "--out", str(folder / out),
            "--no-progress", *extra]


def forecast_cases() -> list[Case]:
    def store_file(ws, folder):
        (folder / "fc.icechunk").write_text("x")
        return forecast_args(ws, folder, ws.model)

    MOUNTS.update({"forecast: store on a read-only file system": "ro,size=64k",
                   "forecast: disk full while committing": "size=64k"})
    return [
        Case("forecast: checkpoint of NaN weights", "forecast", damaged_model("nan"), needle="NaN"),
        Case("forecast: weights changed since saving", "forecast", damaged_model("flipped"), needle="SHA-256"),
        Case("forecast: checkpoint without state.json", "forecast", damaged_model("no state"), needle="incomplete"),
        Case("forecast: a pickle as the model", "forecast", damaged_model("pickle"), needle="pickle"),
        Case("forecast: model directory without checkpoints", "forecast", damaged_model("empty"),
             needle="no checkpoint"),
        Case("forecast: store path is a regular file", "forecast", store_file, needle="fc.icechunk"),
        Case("forecast: init time outside the data", "forecast",
             lambda ws, f: with_flag(forecast_args(ws, f, ws.model), "--init-times", "1999-01-01T00"), needle="1999"),
        Case("forecast: store on a read-only file system", "forecast",
             lambda ws, f: forecast_args(ws, f, ws.model, "disk/fc.icechunk"), needle="read-only", needs="root"),
        Case("forecast: disk full while committing", "forecast",
             lambda ws, f: forecast_args(ws, f, ws.model, "disk/fc.icechunk"), needle="space", needs="root"),
    ]


def damaged_store(kind: str) -> Callable[[Workspace, Path], Path]:
    def make(ws: Workspace, folder: Path) -> Path:
        path = folder / "store.icechunk"
        if kind == "file":
            path.write_text("not a store")
            return path
        shutil.copytree(ws.forecast_store, path)
        if kind == "refs":
            shutil.rmtree(path / "refs")
        elif kind == "branch":
            for ref in (path / "refs").iterdir():
                if ref.name.startswith("branch"):
                    shutil.rmtree(ref)
        elif kind.startswith(("truncated", "deleted")):
            what = kind.split()[-1]
            for item in sorted((path / what).iterdir()):
                if kind.startswith("deleted"):
                    item.unlink()
                else:
                    item.write_bytes(item.read_bytes()[: item.stat().st_size // 2])
        return path
    return make


def query(store: Callable[[Workspace, Path], Path] | None = None, *extra: str, variable: str = "temperature") -> Callable:
    def build(ws, folder):
        path = store(ws, folder) if store is not None else ws.forecast_store
        return ["query", "point", str(path), "-V", variable, "-l", "500", "--lat", "10", "--lon", "20", *extra]
    return build


def query_cases() -> list[Case]:
    def out_dir(ws, folder):
        (folder / "answer").mkdir()
        return query(None, "--out", str(folder / "answer"))(ws, folder)

    def out_below_file(ws, folder):
        (folder / "afile").write_text("x")
        return query(None, "--out", str(folder / "afile" / "a.json"))(ws, folder)

    def region_netcdf(path: str) -> Callable:
        def build(ws, folder):
            return ["query", "region", str(ws.forecast_store), "-V", "temperature", "-l", "500", "--lat-min", "-90",
                    "--lat-max", "90", "--lon-min", "0", "--lon-max", "359", "--lead", "6h", "--members", "-f",
                    "netcdf", "--out", str(folder / path)]
        return build

    MOUNTS.update({"query: --out on a read-only file system": "ro,size=64k",
                   "query: disk full while writing --out": "size=8k"})
    return [
        Case("query: store missing", "query", query(lambda ws, f: f / "nope"), needle="nope"),
        Case("query: store is a regular file", "query", query(damaged_store("file")), needle="is a file"),
        Case("query: branch references deleted", "query", query(damaged_store("refs")), needle="refs"),
        Case("query: main branch deleted", "query", query(damaged_store("branch")), needle="branch"),
        Case("query: snapshot files truncated", "query", query(damaged_store("truncated snapshots")),
             needle="cannot read"),
        Case("query: manifests truncated", "query", query(damaged_store("truncated manifests")), needle="store"),
        Case("query: chunks truncated", "query", query(damaged_store("truncated chunks")), needle="store"),
        Case("query: chunks deleted", "query", query(damaged_store("deleted chunks")), needle="store"),
        Case("query: unknown variable", "query", query(None, variable="precip"), needle="precip"),
        Case("query: latitude 200", "query", lambda ws, f: with_flag(query(None)(ws, f), "--lat", "200"),
             needle="lat"),
        Case("query: init time 99999-01-01", "query", query(None, "-i", "99999-01-01"), needle="99999"),
        Case("query: quantile 1.5", "query", query(None, "-q", "1.5"), needle="quantile"),
        Case("query: netcdf without --out", "query", query(None, "-f", "netcdf"), needle="--out"),
        Case("query: --out is a directory", "query", out_dir, needle="directory"),
        Case("query: --out below a regular file", "query", out_below_file, needle="is a file"),
        Case("query: --out on a read-only file system", "query", region_netcdf("disk/a.nc"), needle="read-only",
             needs="root"),
        Case("query: disk full while writing --out", "query", region_netcdf("disk/a.nc"), needle="space",
             needs="root"),
        Case("store gc: a bad age", "query", lambda ws, f: ["store", "gc", str(ws.forecast_store), "--grace", "soon"],
             needle="12h"),
    ]


def protein_cases() -> list[Case]:
    def ingest(make: Callable[[Workspace, Path], Path], *extra: str, top: bool = True) -> Callable:
        def build(ws, folder):
            traj = make(ws, folder)
            return ["ingest", "protein", "--traj", str(traj), *(["--top", str(ws.pdb)] if top else []),
                    "--out", str(folder / "out.zarr"), *extra]
        return build

    def saved(name: str, atoms: int | None = None, cut: float | None = None, nan: bool = False) -> Callable:
        def make(ws, folder):
            import mdtraj

            traj = ws.traj if atoms is None else ws.traj.atom_slice(range(atoms))
            if nan:
                xyz = traj.xyz.copy()
                xyz[4, 2, 0] = float("nan")
                traj = mdtraj.Trajectory(xyz, traj.topology)
            path = folder / name
            if name.endswith(".mdcrd"):
                traj.save_mdcrd(str(path))
            else:
                traj.save(str(path))
            if cut is not None:
                if name.endswith(".mdcrd"):
                    lines = path.read_text().splitlines(keepends=True)
                    path.write_text("".join(lines[: int(len(lines) * cut)]))
                else:
                    cut_file(path, path, cut)
            return path
        return make

    def stale_dcd(ws, folder):
        blob = bytearray(ws.dcd.read_bytes())
        blob[8:12] = struct.pack("<i", 40)
        (folder / "stale.dcd").write_bytes(bytes(blob))
        return folder / "stale.dcd"

    def folder_traj(ws, folder):
        (folder / "a.dcd").mkdir()
        return folder / "a.dcd"

    def unicode(ws, folder):
        sub = folder / "läuft-蛋白"
        sub.mkdir()
        shutil.copy(ws.dcd, sub / "ala.dcd")
        return sub / "ala.dcd"

    return [
        Case("protein: trajectory missing", "protein", ingest(lambda ws, f: f / "nope.dcd"), needle="nope.dcd"),
        Case("protein: trajectory is a directory", "protein", ingest(folder_traj), needle="directory"),
        Case("protein: atom count differs (DCD)", "protein", ingest(saved("few.dcd", atoms=10)), needle="10 atoms"),
        Case("protein: atom count differs (mdcrd)", "protein", ingest(saved("few.mdcrd", atoms=10)),
             needle="22 atoms"),
        Case("protein: DCD cut mid-frame", "protein", ingest(saved("cut.dcd", cut=0.73)), needle="incomplete"),
        Case("protein: XTC cut", "protein", ingest(saved("cut.xtc", cut=0.53)), needle="truncated"),
        Case("protein: mdcrd cut mid-frame", "protein", ingest(saved("cut.mdcrd", cut=0.5)), needle="truncated"),
        Case("protein: NaN coordinates", "protein", ingest(saved("nan.nc", nan=True)), needle="non-finite"),
        Case("protein: DCD without topology", "protein", ingest(lambda ws, f: ws.dcd, top=False), needle="--top"),
        Case("protein: empty selection", "protein", ingest(lambda ws, f: ws.dcd, "--select", "name ZZ"),
             needle="no atoms"),
        Case("protein: DCD header declares more frames", "protein", ingest(stale_dcd), expect="accept"),
        Case("protein: non-ASCII path", "protein", ingest(unicode), expect="accept"),
    ]


def service_cases() -> list[Case]:
    def serve(*extra: str) -> Callable:
        return lambda ws, f: ["serve", str(ws.forecast_store), *extra]
    return [
        Case("serve: invalid --host", "service", serve("--host", "no such host!"), needle="host"),
        Case("serve: token file missing", "service", lambda ws, f: ["serve", str(ws.forecast_store), "--token-file",
                                                                    str(f / "none.txt")], needle="none.txt"),
        Case("serve: store missing", "service", lambda ws, f: ["serve", str(f / "nope.icechunk")], needle="nope"),
    ]


# ---------------------------------------------------------------- the service under load

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_load(ws: Workspace) -> list[Outcome]:
    """A real ``velocast serve`` on loopback: concurrent NetCDF answers, a foreign Host, half-open connections."""
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", str(ws.forecast_store), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    url = f"http://127.0.0.1:{port}"
    outcomes = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)

        def netcdf(i: int) -> int:
            with httpx.Client(timeout=60) as client:
                codes = [client.get(f"{url}/v1/point", params={"variable": "temperature", "level": 500,
                                                               "lat": -80 + 10 * (i % 16), "lon": 20 * k,
                                                               "format": "netcdf"}).status_code for k in range(10)]
            return sum(code == 200 for code in codes)

        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ok = sum(pool.map(netcdf, range(8)))
        alive = proc.poll() is None
        outcomes.append(Outcome("serve: 8 clients × 10 NetCDF answers at once", "service",
                                "clear" if ok == 80 and alive else "crash", 0, f"{ok}/80 answered",
                                time.monotonic() - start))
        start = time.monotonic()
        code = httpx.get(f"{url}/health", headers={"Host": "evil.example"}, timeout=10).status_code
        outcomes.append(Outcome("serve: foreign Host header without a token (DNS rebinding)", "service",
                                "clear" if code == 400 else "silent", 0, f"HTTP {code}", time.monotonic() - start))
        start = time.monotonic()
        socks = []
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finishes its headers
            socks.append(sock)
        time.sleep(12)
        closed = 0
        for sock in socks:
            sock.settimeout(0.2)
            try:
                closed += sock.recv(1) == b""
            except (TimeoutError, OSError):
                pass
            sock.close()
        still = httpx.get(f"{url}/health", timeout=10).status_code
        outcomes.append(Outcome("serve: 200 half-open connections", "service",
                                "clear" if closed == 200 and still == 200 else "crash", 0,
                                f"{closed}/200 closed by the server; health {still}", time.monotonic() - start))
    finally:
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        if proc.poll() is None:
            proc.kill()
    return outcomes


# ---------------------------------------------------------------- kill -9 of real writers

@dataclass
class KillReport:
    writer: str
    runs: int = 0
    killed_mid_write: int = 0
    lost: int = 0  # a previously complete output (or committed cycle) no longer readable
    torn: int = 0  # an output visible but incomplete
    leftovers: int = 0  # temporaries left after the rerun
    differs: int = 0  # rerun output differs from an uninterrupted run
    notes: list[str] = field(default_factory=list)


def kill_at_random(args: list[str], cwd: Path, after_s: float) -> bool:
    """Start ``velocast ARGS``, SIGKILL it after ``after_s`` seconds; True if it was still running."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    try:
        proc.wait(timeout=after_s)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def timed(args: list[str], cwd: Path) -> float:
    start = time.monotonic()
    run(args, cwd=cwd, check=True)
    return time.monotonic() - start


def same_zarr(a: Path, b: Path) -> bool:
    import numpy as np
    import xarray as xr

    left, right = xr.open_zarr(a), xr.open_zarr(b)
    return set(left.data_vars) == set(right.data_vars) and all(
        np.array_equal(left[n].values, right[n].values, equal_nan=True) for n in left.data_vars)


def kill_ingest(ws: Workspace, folder: Path, runs: int, rng: random.Random) -> KillReport:
    report = KillReport("ingest weather (store replaced with --overwrite)")
    recipe = ws.recipe(folder, [ws.big_nc], name="big.yaml")
    clean = folder / "clean.zarr"
    duration = timed(["ingest", "weather", str(recipe), "--out", str(clean), "--no-progress"], folder)
    out = folder / "out.zarr"
    args = ["ingest", "weather", str(recipe), "--out", str(out), "--no-progress", "--overwrite"]
    run(args, cwd=folder, check=True)
    for _ in range(runs):
        report.runs += 1
        report.killed_mid_write += kill_at_random(args, folder, rng.uniform(0.3, duration))
        try:
            if not same_zarr(out, clean):
                report.torn += 1
        except Exception as exc:  # noqa: BLE001 (whatever a reader meets counts as a lost store)
            report.lost += 1
            report.notes.append(f"after the kill: {type(exc).__name__}")
        run(args, cwd=folder, check=True)
        report.leftovers += len(temporaries(folder))
        report.differs += not same_zarr(out, clean)
    return report


def kill_training(ws: Workspace, folder: Path, runs: int, rng: random.Random) -> KillReport:
    import torch
    import yaml

    from pipeline.weather.modeling.model import load_forecaster

    report = KillReport("train weather (checkpoint every 2 of 12 steps)")
    doc = yaml.safe_load(ws.tiny_config.read_text())
    doc["train"].update(steps=12, checkpoint_every=2, keep_checkpoints=2, validate_every=0)
    config = folder / "train.yaml"
    config.write_text(yaml.safe_dump(doc))
    straight = folder / "straight"
    duration = timed(["train", "weather", "--config", str(config), "--out", str(straight), "--no-progress"], folder)
    reference = load_forecaster(straight)[0].net.state_dict()
    steps = [json.loads(line)["step"] for line in (straight / "metrics.jsonl").read_text().splitlines()]
    for k in range(runs):
        report.runs += 1
        out = folder / f"killed-{k}"
        args = ["train", "weather", "--config", str(config), "--out", str(out), "--no-progress"]
        report.killed_mid_write += kill_at_random(args, folder, rng.uniform(0.5 * duration, duration))
        run(args, cwd=folder, check=True)
        report.leftovers += len(temporaries(out))
        weights = load_forecaster(out)[0].net.state_dict()
        logged = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
        report.differs += not all(torch.equal(v, weights[n]) for n, v in reference.items()) or logged != steps
    return report


def kill_forecast(ws: Workspace, folder: Path, runs: int, rng: random.Random) -> KillReport:
    import numpy as np

    from pipeline.forecast_store import ForecastStore

    report = KillReport("forecast weather (4 cycles into one store)")
    inits = "2020-01-08T00,2020-01-08T06,2020-01-08T12,2020-01-08T18"

    def args(out: Path) -> list[str]:
        return with_flag(with_flag(forecast_args(ws, folder, ws.model), "--init-times", inits), "--out", str(out))

    clean = folder / "clean.icechunk"
    duration = timed(args(clean), folder)
    truth = ForecastStore.open(clean).dataset().load()
    for k in range(runs):
        report.runs += 1
        out = folder / f"killed-{k}.icechunk"
        report.killed_mid_write += kill_at_random(args(out), folder, rng.uniform(0.5 * duration, duration))
        if out.exists():
            try:
                store = ForecastStore.open(out)
                for init in store.init_times():
                    cycle = store.dataset().sel(init_time=init).load()
                    if not all(bool(np.isfinite(cycle[n].values).all()) for n in cycle.data_vars):
                        report.torn += 1
            except Exception as exc:  # noqa: BLE001
                report.lost += 1
                report.notes.append(f"after the kill: {type(exc).__name__}: {str(exc)[:80]}")
        run(args(out), cwd=folder, check=True)
        report.leftovers += len(temporaries(folder))
        again = ForecastStore.open(out).dataset().load()
        again = again.sortby("init_time")
        same = all(np.array_equal(again[n].values, truth.sortby("init_time")[n].values) for n in truth.data_vars)
        report.differs += not same
    return report


def kill_store_writers(ws: Workspace, folder: Path, runs: int, rng: random.Random) -> KillReport:
    """Append SYNTHETIC cycles from a separate process and SIGKILL it; committed cycles must all survive."""
    import numpy as np

    from pipeline.forecast_store import ForecastStore, synthetic_forecast

    report = KillReport("append_cycle (forecast store writer)")
    path = folder / "append.icechunk"
    shutil.copytree(ws.forecast_store, path)
    writer = ("import sys\nfrom pipeline.forecast_store import ForecastStore, synthetic_forecast\n"
              "ds = synthetic_forecast(sys.argv[2], members=5, leads=4, grid=(16, 9), levels=(500, 850))\n"
              "ForecastStore.open(sys.argv[1]).append_cycle(ds, provenance=dict(source='s', config={}, "
              "checkpoint=None, data_snapshot=None))\n")
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", writer, str(path), "2020-01-01T12"], env=ENV, check=True,
                   capture_output=True)
    duration = time.monotonic() - start
    for k in range(runs):
        report.runs += 1
        init = f"2020-01-{2 + k:02d}T00"
        before = ForecastStore.open(path).init_times()
        proc = subprocess.Popen([sys.executable, "-c", writer, str(path), init], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.6 * duration, 0.98 * duration))
        if proc.poll() is None:
            proc.kill()
            report.killed_mid_write += 1
        proc.wait()
        store = ForecastStore.open(path)
        after = store.init_times()
        report.lost += len(set(map(str, before)) - set(map(str, after)))
        subprocess.run([sys.executable, "-c", writer, str(path), init], env=ENV, check=True, capture_output=True)
        store = ForecastStore.open(path)
        expected = synthetic_forecast(init, members=5, leads=4, grid=(16, 9), levels=(500, 850))
        got = store.dataset().sel(init_time=np.datetime64(init, "ns")).load()["temperature"].values
        want = expected["temperature"].values
        report.torn += not bool(np.isfinite(got).all())
        report.differs += got.size != want.size or not np.allclose(np.sort(got.ravel()), np.sort(want.ravel()))
        report.leftovers += len(temporaries(folder))
    return report


# ---------------------------------------------------------------- main

def can_mount(base: Path) -> bool:
    try:
        with tmpfs(base / "probe", "size=16k"):
            return True
    except (PermissionError, FileNotFoundError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5, help="kill -9 runs per writer (0: none)")
    parser.add_argument("--only", default=None, help="run only the cases whose name contains this")
    parser.add_argument("--no-load", action="store_true", help="skip the service load test")
    parser.add_argument("--no-cases", action="store_true", help="skip the input cases (kill runs and load only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_faults.json")
    parser.add_argument("--keep", action="store_true", help="keep the workspace (printed)")
    opts = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="velocast-faults-"))
    ws = Workspace(base)
    rooted = os.geteuid() == 0 and can_mount(base)
    cases = weather_cases() + training_cases() + forecast_cases() + query_cases() + protein_cases() + service_cases()
    if opts.only:
        cases = [c for c in cases if opts.only in c.name]
    if opts.no_cases:
        cases = []
    outcomes: list[Outcome] = []
    skipped: list[str] = []
    started = time.monotonic()
    for i, case in enumerate(cases):
        if (case.needs == "root" and not rooted) or (case.needs == "shared" and not SHARED.is_dir()):
            skipped.append(f"{case.name} (needs {case.needs})")
            continue
        outcome = run_case(ws, case, base / "cases" / f"{i:03d}")
        outcomes.append(outcome)
        mark = "ok " if outcome.verdict == "clear" else "BAD"
        print(f"{mark} {outcome.verdict:9s} {outcome.seconds:5.1f}s  {case.name}: {outcome.line[:110]}"
              f"{'  [' + outcome.detail + ']' if outcome.detail else ''}", flush=True)
    if not opts.no_load and not opts.only:
        for outcome in service_load(ws):
            outcomes.append(outcome)
            print(f"{'ok ' if outcome.verdict == 'clear' else 'BAD'} {outcome.verdict:9s} {outcome.seconds:5.1f}s  "
                  f"{outcome.name}: {outcome.line}", flush=True)
    kills: list[KillReport] = []
    if opts.kills and not opts.only:
        rng = random.Random(opts.seed)
        for name, fn in (("ingest", kill_ingest), ("training", kill_training), ("forecast", kill_forecast),
                         ("store", kill_store_writers)):
            folder = base / "kills" / name
            folder.mkdir(parents=True)
            report = fn(ws, folder, opts.kills, rng)
            kills.append(report)
            print(f"kill -9 {report.writer}: {asdict(report)}", flush=True)

    groups = sorted({o.group for o in outcomes}, key=[o.group for o in outcomes].index)
    print()
    header = f"{'group':10s} {'cases':>5s} " + " ".join(f"{c:>9s}" for c in COLUMNS)
    print(header)
    print("-" * len(header))
    totals = dict.fromkeys(COLUMNS, 0)
    for group in [*groups, "all"]:
        rows = [o for o in outcomes if group in ("all", o.group)]
        counts = {c: sum(o.verdict == c for o in rows) for c in COLUMNS}
        if group == "all":
            print("-" * len(header))
            totals = counts
        print(f"{group:10s} {len(rows):5d} " + " ".join(f"{counts[c]:9d}" for c in COLUMNS))
    if kills:
        print()
        print(f"{'kill -9 of':50s} {'runs':>4s} {'mid-write':>9s} {'lost':>4s} {'torn':>4s} {'leftover':>8s} "
              f"{'differs':>7s}")
        for report in kills:
            print(f"{report.writer:50s} {report.runs:4d} {report.killed_mid_write:9d} {report.lost:4d} "
                  f"{report.torn:4d} {report.leftovers:8d} {report.differs:7d}")
    if skipped:
        print(f"\nskipped {len(skipped)}: " + "; ".join(skipped))
    bad = sum(totals[c] for c in BAD) + sum(r.lost + r.torn + r.leftovers + r.differs for r in kills)
    elapsed = time.monotonic() - started
    print(f"\n{len(outcomes)} cases, {sum(r.runs for r in kills)} kill runs in {elapsed:.0f} s: "
          f"{'no bad outcome' if bad == 0 else f'{bad} BAD outcomes'}")
    Path(opts.out).write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "python": sys.version.split()[0], "seconds": elapsed,
        "totals": totals, "cases": [asdict(o) for o in outcomes], "kills": [asdict(r) for r in kills],
        "skipped": skipped, "root_mounts": rooted,
    }, indent=1))
    print(f"wrote {opts.out}")
    if opts.keep:
        print(f"workspace: {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
