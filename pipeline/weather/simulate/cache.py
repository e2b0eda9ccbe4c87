"""Run the Held–Suarez atmosphere and cache the result as a Zarr v3 store.

Cache location: ``$VELOCAST_CACHE/held-suarez/<key>.zarr`` (default ``~/.cache/velocast``); the key
hashes the :class:`~pipeline.weather.simulate.model.AtmosphereConfig`, ``SIMULATOR_VERSION`` and the
dinosaur-torch version, so a second call with the same parameters reuses the store.

Store layout: the canonical variables (time, level, latitude, longitude) / (time, latitude, longitude)
at the root, and the restartable spectral model state at every output time in the group
``model_state`` (``vorticity``, ``divergence``, ``temperature_variation``: (time, layer, m, l);
``log_surface_pressure``: (time, m, l); float32, bitwise the state the run continued from).
"""

from __future__ import annotations

import json
import os
import shutil
import time as timer
from importlib.metadata import version as pkg_version
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.provenance import config_hash, provenance_record
from pipeline.weather.simulate.model import SIMULATOR_VERSION, STATE_FIELDS, AtmosphereConfig

CITATION = (
    "Held, I. M. and M. J. Suarez, 1994: A proposal for the intercomparison of the dynamical cores of "
    "atmospheric general circulation models. Bull. Amer. Meteor. Soc., 75, 1825-1830."
)
STATE_GROUP = "model_state"
WRITE_BLOCK = 64  # outputs held in memory before a region write


def cache_root() -> Path:
    """``$VELOCAST_CACHE`` or ``~/.cache/velocast``."""
    return Path(os.environ.get("VELOCAST_CACHE") or Path.home() / ".cache" / "velocast")


def cache_key(config: AtmosphereConfig) -> str:
    """Hash of the parameters and the simulator's code version."""
    fields = config.model_dump(mode="json")
    if not config.diurnal_heating_k_per_day:  # the plain atmosphere keeps the keys it had before the option
        fields.pop("diurnal_heating_k_per_day")
        fields.pop("sea_heating_fraction")
    return config_hash({"config": fields, "simulator": SIMULATOR_VERSION, "dinosaur_torch": pkg_version("dinosaur-torch")})


def default_compile(config: AtmosphereConfig) -> bool:
    """torch.compile runs longer than 30 simulated days (compiling costs ~0.5-3 min on 2 busy cores, once per
    machine: inductor caches it). A run with diurnal heating steps eagerly: its clock changes every step."""
    return config.spinup_days + config.days > 30 and not config.diurnal_heating_k_per_day


def cache_path(config: AtmosphereConfig, *, compiled: bool | None = None) -> Path:
    """Cache entry of ``config``. Compiled and eager runs round differently (and chaos amplifies it), so an
    eager run's entry carries an ``-eager`` suffix."""
    compiled = default_compile(config) if compiled is None else compiled
    return cache_root() / "held-suarez" / f"{cache_key(config)}{'' if compiled else '-eager'}.zarr"


def output_times(config: AtmosphereConfig) -> pd.DatetimeIndex:
    """Calendar times of the kept outputs (nominal unless the run has diurnal heating, whose sun follows them)."""
    n = round(config.days * 24 / config.output_hours)
    return pd.date_range(pd.Timestamp(config.start), periods=n, freq=pd.Timedelta(hours=config.output_hours))


def simulate(
    config: AtmosphereConfig, *, compile: bool | None = None, progress: bool = True, refresh: bool = False
) -> Path:
    """The cached store for ``config``, simulating it first when absent. Returns its path."""
    if compile is None:
        # Either execution mode's entry will do when the caller did not choose one.
        for mode in (default_compile(config), not default_compile(config)):
            if cache_path(config, compiled=mode).exists() and not refresh:
                return cache_path(config, compiled=mode)
        compile = default_compile(config)
    path = cache_path(config, compiled=compile)
    if path.exists() and not refresh:
        return path
    from pipeline.files import clean_stale, temp_beside

    clean_stale(path)
    tmp = temp_beside(path)
    try:
        run_to_store(config, tmp, compile=compile, progress=progress)
        if path.exists() and refresh:
            shutil.rmtree(path, ignore_errors=True)
        try:
            os.replace(tmp, path)
        except OSError:
            if not path.exists():  # not a concurrent writer that finished first: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def open_model_state(store: str | Path) -> xr.Dataset:
    """The ``model_state`` group of a simulation (or of a training store written from one)."""
    return xr.open_zarr(store, group=STATE_GROUP, chunks={})


def run_to_store(
    config: AtmosphereConfig, path: Path, *, compile: bool | None = None, progress: bool = True
) -> dict[str, float]:
    """Spin up, then integrate and write outputs + states to a new Zarr v3 store at ``path``.

    ``compile`` defaults to :func:`default_compile`. Returns timing: ``days_per_second`` of the whole
    integration (spin-up included).
    """
    import torch

    from pipeline.console import make_progress
    from pipeline.weather.simulate.model import AtmosphereModel, state_to_numpy

    if compile is None:
        compile = default_compile(config)
    t_build = timer.perf_counter()
    model = AtmosphereModel(config, compile=compile)
    build_s = timer.perf_counter() - t_build
    times = output_times(config)
    n_out = len(times)
    spinup_steps = round(config.spinup_days * 24 * 60 / config.dt_minutes)
    k = model.steps_per_output
    template = _template(model, times)
    template.to_zarr(path, mode="w", zarr_format=3, compute=False, consolidated=False)
    state_template = _state_template(model, times)
    state_template.to_zarr(path, group=STATE_GROUP, mode="a", zarr_format=3, compute=False, consolidated=False)

    state = model.initial_state(config.seed)
    t0 = timer.perf_counter()
    with make_progress(transient=not progress) as bar:
        task = bar.add_task("Held–Suarez", total=spinup_steps + n_out * k, visible=progress)
        chunk = max(k, 48)
        done = 0
        spinup_hours = -spinup_steps * config.dt_minutes / 60.0
        while done < spinup_steps:
            n = min(chunk, spinup_steps - done)
            state = model.advance(state, n, hours=spinup_hours + done * config.dt_minutes / 60.0)
            done += n
            bar.advance(task, n)
        block_fields: list[dict[str, np.ndarray]] = []
        block_states: list[dict[str, np.ndarray]] = []
        start = 0
        for i in range(n_out):
            block_fields.append(model.fields(state))
            block_states.append(state_to_numpy(state))
            if len(block_fields) == WRITE_BLOCK or i == n_out - 1:
                _write_block(path, model, times, start, block_fields, block_states)
                start += len(block_fields)
                block_fields, block_states = [], []
            if i < n_out - 1:
                state = model.advance(state, k, hours=i * config.output_hours)
            bar.advance(task, k)
    elapsed = timer.perf_counter() - t0
    speed = (config.spinup_days + config.days) / max(elapsed, 1e-9)
    import zarr

    root = zarr.open_group(str(path), mode="r+")
    root.attrs.update(
        {
            "title": "Held-Suarez (1994) atmosphere on the dinosaur-torch primitive-equation core",
            "citation": CITATION,
            "simulator_version": SIMULATOR_VERSION,
            "simulator_config": json.loads(config.model_dump_json()),
            "time_step": f"{config.output_hours}h",
            "provenance": provenance_record(
                source=f"builtin:held-suarez (seed {config.seed})",
                config=config,
                dinosaur_torch=pkg_version("dinosaur-torch"),
                torch=torch.__version__,
                compiled=bool(model.compiled),
                build_seconds=round(build_s, 2),
                integration_seconds=round(elapsed, 2),
                simulated_days_per_second=round(speed, 3),
                torch_threads=torch.get_num_threads(),
            ),
        }
    )
    from pipeline.weather.store import consolidate

    consolidate(path)
    return {"days_per_second": speed, "seconds": elapsed, "build_seconds": build_s}


def _template(model, times: pd.DatetimeIndex) -> xr.Dataset:
    import dask.array as da

    levels = np.asarray(model.config.levels, np.int32)
    nlat, nlon = len(model.latitude), len(model.longitude)
    shape3 = (len(times), len(levels), nlat, nlon)
    shape2 = (len(times), nlat, nlon)
    ch = min(WRITE_BLOCK, len(times))
    meta = {
        "temperature": "K", "geopotential": "m**2 s**-2",
        "u_component_of_wind": "m s**-1", "v_component_of_wind": "m s**-1",
    }
    data = {
        name: (("time", "level", "latitude", "longitude"),
               da.zeros(shape3, chunks=(ch, -1, -1, -1), dtype=np.float32), {"units": u})
        for name, u in meta.items()
    }
    data["surface_pressure"] = (
        ("time", "latitude", "longitude"), da.zeros(shape2, chunks=(ch, -1, -1), dtype=np.float32), {"units": "Pa"}
    )
    if model.diurnal:
        data["2m_temperature"] = (
            ("time", "latitude", "longitude"), da.zeros(shape2, chunks=(ch, -1, -1), dtype=np.float32),
            {"units": "K", "long_name": "temperature of the lowest model level (sigma = 1 - 1/(2 layers))"},
        )
        data["land_sea_mask"] = (("latitude", "longitude"), model.land_sea_mask(),
                                 {"units": "1", "long_name": "idealised land-sea mask of the diurnal heating"})
    return xr.Dataset(
        data,
        coords={
            "time": times.values.astype("datetime64[ns]"),
            "level": ("level", levels, {"units": "hPa"}),
            "latitude": ("latitude", model.latitude[model._lat_order], {"units": "degrees_north"}),
            "longitude": ("longitude", model.longitude, {"units": "degrees_east"}),
        },
    )


def _state_template(model, times: pd.DatetimeIndex) -> xr.Dataset:
    import dask.array as da

    layers = model.config.layers
    m, l = model.grid.modal_shape
    ch = min(WRITE_BLOCK, len(times))
    data = {
        name: (("time", "layer", "m", "l"), da.zeros((len(times), layers, m, l), chunks=(ch, -1, -1, -1), dtype=np.float32))
        for name in STATE_FIELDS[:3]
    }
    data["log_surface_pressure"] = (("time", "m", "l"), da.zeros((len(times), m, l), chunks=(ch, -1, -1), dtype=np.float32))
    return xr.Dataset(
        data,
        coords={"time": times.values.astype("datetime64[ns]"),
                "layer": ("layer", np.asarray(model.coords.vertical.coordinates.centers, np.float64))},
        attrs={"description": "dinosaur-torch modal state (nondimensional), restartable bitwise"},
    )


def _write_block(path, model, times, start, fields, states) -> None:
    sl = slice(start, start + len(fields))
    coords = {"time": times.values[sl].astype("datetime64[ns]")}
    out = {}
    for name in fields[0]:
        arr = np.stack([f[name] for f in fields])
        dims = ("time", "level", "latitude", "longitude") if arr.ndim == 4 else ("time", "latitude", "longitude")
        out[name] = (dims, arr)
    xr.Dataset(out, coords=coords).drop_vars("time").to_zarr(path, region={"time": sl}, zarr_format=3, consolidated=False)
    st = {}
    for name in STATE_FIELDS:
        arr = np.stack([s[name] for s in states])
        if name == "log_surface_pressure":
            st[name] = (("time", "m", "l"), arr[:, 0])
        else:
            st[name] = (("time", "layer", "m", "l"), arr)
    xr.Dataset(st).to_zarr(path, group=STATE_GROUP, region={"time": sl}, zarr_format=3, consolidated=False)
