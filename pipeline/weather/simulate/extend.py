"""New analyses "arriving": continue the Held–Suarez run of a store and append the new output times.

The embedded atmosphere has no outside feed, so an operational cycle gets new data by integrating the
same model further. :func:`extend_simulation` restarts :class:`~pipeline.weather.simulate.model.AtmosphereModel`
from the store's last saved ``model_state`` (bitwise the state the original run continued from), integrates
``hours`` more (one output every ``output_hours``) and appends the fields and the modal states.

Atomicity: the whole new block is first integrated and written to a temporary Zarr store beside the
target; only then is it appended (``model_state`` group first, the canonical variables last, then the
consolidated metadata is refreshed), under a lock file so two extenders never interleave. A failure while
integrating leaves the store untouched. Readers keyed on the root ``time`` coordinate never see a time
whose variables are not written.
"""

from __future__ import annotations

import json
import os
import shutil
import time as timer
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.errors import UserError
from pipeline.weather.simulate.cache import STATE_GROUP
from pipeline.weather.simulate.model import (
    STATE_FIELDS,
    AtmosphereConfig,
    AtmosphereModel,
    state_from_numpy,
    state_to_numpy,
)


@dataclass(frozen=True)
class ExtendResult:
    """What an extension appended: the new times (ISO) and the store's last time afterwards."""

    path: str
    added: list[str]
    last_time: str
    seconds: float


@contextmanager
def _store_lock(path: Path, *, timeout_s: float = 600.0) -> Iterator[None]:
    lock = path.parent / f".{path.name}.extend.lock"
    start = timer.monotonic()
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            break
        except FileExistsError:
            if timer.monotonic() - start > timeout_s:
                raise UserError(f"another extension holds the lock {lock}; remove it if no run is active",
                                path=path) from None
            timer.sleep(0.2)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _config_of(root: xr.Dataset, path: Path) -> AtmosphereConfig:
    raw = root.attrs.get("simulator_config")
    if raw is None:
        raise UserError("not a simulation of the embedded atmosphere (no simulator_config attribute); "
                        "only Held–Suarez stores can be extended", path=path)
    if isinstance(raw, str):
        raw = json.loads(raw)
    return AtmosphereConfig.model_validate(raw)


def extend_simulation(store: str | Path, *, hours: float, progress: bool = False) -> ExtendResult:
    """Integrate the store's atmosphere ``hours`` further and append the new outputs (see module)."""
    path = Path(store)
    if not path.exists():
        raise UserError("analysis store not found", path=path)
    started = timer.monotonic()
    root = xr.open_zarr(path, chunks={})
    config = _config_of(root, path)
    n_new = int(round(hours / config.output_hours))
    if n_new < 0 or abs(n_new * config.output_hours - hours) > 1e-9:
        raise UserError(f"extension of {hours:g} h is not a whole number of {config.output_hours} h outputs",
                        path=path)
    times = pd.DatetimeIndex(root["time"].values)
    if n_new == 0:
        return ExtendResult(str(path), [], times[-1].isoformat(), 0.0)
    try:
        states = xr.open_zarr(path, group=STATE_GROUP, chunks={})
    except (FileNotFoundError, KeyError, OSError, ValueError):
        raise UserError(f"has no `{STATE_GROUP}` group to continue the simulation from", path=path) from None
    last = pd.Timestamp(states["time"].values[-1])
    if last != times[-1]:
        raise UserError(f"model_state ends at {last} but the fields end at {times[-1]}; the store is inconsistent",
                        path=path)
    one = states.isel(time=-1).load()
    arrays = {k: one[k].values for k in STATE_FIELDS[:3]}
    arrays["log_surface_pressure"] = one["log_surface_pressure"].values[None]
    levels = tuple(int(v) for v in root["level"].values)
    model = AtmosphereModel(config.model_copy(update={"levels": levels}), compile=False)
    state = state_from_numpy(arrays)

    step = pd.Timedelta(hours=config.output_hours)
    new_times = pd.date_range(times[-1] + step, periods=n_new, freq=step)
    fields: list[dict[str, np.ndarray]] = []
    saved: list[dict[str, np.ndarray]] = []
    hours = (times[-1] - pd.Timestamp(config.start)) / pd.Timedelta(hours=1)
    for j in range(n_new):
        state = model.advance(state, model.steps_per_output, hours=hours + j * config.output_hours)
        fields.append(model.fields(state))
        saved.append(state_to_numpy(state))
    block = _fields_block(root, fields, new_times)
    state_block = _state_block(states, saved, new_times)

    tmp = path.parent / f".{path.name}.extend-{uuid.uuid4().hex[:8]}"
    try:
        block.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)
        state_block.to_zarr(tmp, group=STATE_GROUP, mode="a", zarr_format=3, consolidated=False)
        written = _plain(xr.open_zarr(tmp, consolidated=False).load(), attrs=root.attrs)
        written_states = _plain(xr.open_zarr(tmp, group=STATE_GROUP, consolidated=False).load(), attrs=states.attrs)
        with _store_lock(path):
            now = pd.DatetimeIndex(xr.open_zarr(path, consolidated=False)["time"].values)
            if now[-1] != times[-1]:
                raise UserError(f"the store changed while extending (now ends at {now[-1]}); run again", path=path)
            written_states.to_zarr(path, group=STATE_GROUP, mode="a", append_dim="time", consolidated=False)
            written.to_zarr(path, mode="a", append_dim="time", consolidated=False)
            from pipeline.weather.store import consolidate

            consolidate(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExtendResult(str(path), [t.isoformat() for t in new_times], new_times[-1].isoformat(),
                        timer.monotonic() - started)


def _plain(ds: xr.Dataset, *, attrs: dict) -> xr.Dataset:
    """``ds`` without encodings (the target's chunks and codecs apply) and with the target's attributes
    (an append rewrites the group's attributes)."""
    for var in ds.variables.values():
        var.encoding = {}
    ds.attrs = dict(attrs)
    return ds


def _fields_block(root: xr.Dataset, fields: list[dict[str, np.ndarray]], times: pd.DatetimeIndex) -> xr.Dataset:
    out = {}
    for name in root.data_vars:
        if "time" not in root[name].dims:
            continue
        if name not in fields[0]:
            raise UserError(f"cannot extend variable {name!r}: the simulator does not produce it")
        arr = np.stack([f[name] for f in fields]).astype(root[name].dtype)
        out[name] = (root[name].dims, arr, dict(root[name].attrs))
    coords = {"time": times.values.astype("datetime64[ns]")}
    for c in ("level", "latitude", "longitude"):
        if c in root.coords:
            coords[c] = root[c].values
    return xr.Dataset(out, coords=coords)


def _state_block(states: xr.Dataset, saved: list[dict[str, np.ndarray]], times: pd.DatetimeIndex) -> xr.Dataset:
    data = {}
    for name in STATE_FIELDS:
        arr = np.stack([s[name] for s in saved])
        if name == "log_surface_pressure":
            arr = arr[:, 0]
        data[name] = (states[name].dims, arr.astype(np.float32))
    coords = {"time": times.values.astype("datetime64[ns]")}
    if "layer" in states.coords:
        coords["layer"] = states["layer"].values
    return xr.Dataset(data, coords=coords)
