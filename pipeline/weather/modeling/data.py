"""Training windows for the conditional weather model.

States are stacked into channels (``temperature_850``, ..., ``surface_pressure``) and standardised per
channel, ``z = (x - μ)/σ``. A training example at index ``i`` is the pair of previous states
``(z[i-k], z[i])`` (``k`` = model step in store steps) and the target *normalised residual*
``r = (x[i+k] - x[i]) / σ_Δ`` with ``σ_Δ`` the per-channel std of the k-step difference (as GenCast).
Only windows whose three times are exactly one model step apart are used, so gaps never leak in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr

from models.training.data import Batch
from pipeline.evaluation.ensemble import latitude_weights
from pipeline.weather.modeling.features import (
    build_condition,
    condition_channels,
    forcing_channels,
    grid_features,
    standardise_static,
)
from pipeline.weather.schema import CANONICAL, channel_name


@dataclass(frozen=True)
class Channel:
    """A variable at a level (``level=None`` for a surface variable)."""

    variable: str
    level: int | None

    @property
    def name(self) -> str:
        return channel_name(self.variable, self.level)


def dynamic_channels(dataset: xr.Dataset, variables: Sequence[str] | None = None) -> list[Channel]:
    """Every (variable, level) of ``variables``, or of all time-varying variables of ``dataset`` (level
    variables first, then surface ones, each alphabetically: an order independent of the file)."""
    names = list(variables) if variables else sorted(
        (str(v) for v, a in dataset.data_vars.items() if "time" in a.dims and {"latitude", "longitude"} <= set(a.dims)),
        key=lambda v: ("level" not in dataset[v].dims, v),
    )
    channels = []
    for name in names:
        if name not in dataset:
            raise KeyError(f"variable {name!r} is not in the training store")
        array = dataset[name]
        if "level" in array.dims:
            channels += [Channel(name, int(level)) for level in array["level"].values]
        else:
            channels.append(Channel(name, None))
    return channels


def static_variables(dataset: xr.Dataset) -> list[str]:
    """Static fields of the store (no time dim, on the grid) in a stable order."""
    return sorted(
        str(name) for name, array in dataset.data_vars.items()
        if "time" not in array.dims and {"latitude", "longitude"} <= set(array.dims)
        and (CANONICAL.get(str(name)) is None or CANONICAL[str(name)].kind == "static")
    )


def stack_channels(dataset: xr.Dataset, channels: Sequence[Channel]) -> np.ndarray:
    """``(T, C, H, W)`` float32 array of the channels (loads the data, each variable once)."""
    loaded: dict[str, xr.DataArray] = {}
    arrays = []
    for channel in channels:
        if channel.variable not in loaded:
            # the synchronous scheduler: on 2 cores, threads contending with zarr's own I/O were ~8x slower
            loaded[channel.variable] = dataset[channel.variable].load(scheduler="synchronous")
        array = loaded[channel.variable]
        if channel.level is not None:
            array = array.sel(level=channel.level)
        arrays.append(array.transpose("time", "latitude", "longitude").values.astype(np.float32))
    return np.stack(arrays, axis=1)


@dataclass(frozen=True)
class Normalisation:
    """Per-channel ``mean``, ``std`` and k-step-difference ``diff_std`` (physical units); the weather domain's
    codec (:class:`pipeline.base.Codec`): ``encode`` standardises, ``decode`` undoes it."""

    channels: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    diff_std: np.ndarray

    @classmethod
    def compute(cls, states: np.ndarray, channels: Sequence[Channel], *, stride: int) -> Normalisation:
        """Statistics of ``states`` ``(T, C, H, W)`` (area-unweighted, as a normaliser needs)."""
        mean = states.mean(axis=(0, 2, 3), dtype=np.float64)
        std = states.std(axis=(0, 2, 3), dtype=np.float64)
        diff = states[stride:] - states[:-stride]
        diff_std = diff.std(axis=(0, 2, 3), dtype=np.float64)
        return cls(tuple(c.name for c in channels), mean, np.maximum(std, 1e-12), np.maximum(diff_std, 1e-12))

    def to_json(self) -> str:
        return json.dumps({"channels": list(self.channels), "mean": self.mean.tolist(),
                           "std": self.std.tolist(), "diff_std": self.diff_std.tolist()})

    @classmethod
    def from_json(cls, text: str) -> Normalisation:
        data = json.loads(text)
        return cls(tuple(data["channels"]), *(np.asarray(data[k], dtype=np.float64) for k in ("mean", "std", "diff_std")))

    def _shape(self, values: np.ndarray) -> np.ndarray:
        return values.reshape(-1, 1, 1).astype(np.float32)

    def encode(self, states: np.ndarray) -> np.ndarray:
        """Physical states ``(..., C, H, W)`` → standardised ``z = (x - μ)/σ`` per channel."""
        return (states - self._shape(self.mean)) / self._shape(self.std)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Standardised ``z`` → physical states, ``x = z·σ + μ``."""
        return z * self._shape(self.std) + self._shape(self.mean)

    @property
    def residual_scale(self) -> np.ndarray:
        """``σ_Δ/σ`` per channel: a normalised residual times this is a step in normalised state space."""
        return (self.diff_std / self.std).astype(np.float32)


@dataclass
class WeatherWindows:
    """Normalised states in memory, the valid window indices, and the conditioning features."""

    z: np.ndarray  # (T, C, H, W) normalised states
    times: pd.DatetimeIndex
    normalisation: Normalisation
    static: np.ndarray  # (S, H, W): grid features + standardised static fields
    latitude: np.ndarray
    longitude: np.ndarray
    stride: int
    starts: np.ndarray  # indices i with (i - stride, i, i + stride) contiguous in time
    step: pd.Timedelta
    forcings: tuple[str, ...] = ()  # clock forcing fields (see features.forcing_fields)

    @classmethod
    def from_dataset(
        cls,
        dataset: xr.Dataset,
        channels: Sequence[Channel],
        *,
        step: pd.Timedelta,
        normalisation: Normalisation | None = None,
        forcings: Sequence[str] = (),
    ) -> WeatherWindows:
        times = pd.DatetimeIndex(dataset["time"].values)
        if len(times) < 3:
            raise ValueError(f"need at least 3 times, the data has {len(times)}")
        spacing = pd.Timedelta(np.median(np.diff(times.values)))
        if step % spacing != pd.Timedelta(0):
            raise ValueError(f"the model step {step} is not a multiple of the data's spacing {spacing}")
        stride = int(step / spacing)
        states = stack_channels(dataset, channels)
        if not np.isfinite(states).all():
            raise ValueError("the training data contain NaNs in a dynamic channel")
        normalisation = normalisation or Normalisation.compute(states, channels, stride=stride)
        z = normalisation.encode(states)
        index = np.arange(stride, len(times) - stride)
        contiguous = (times[index] - times[index - stride] == step) & (times[index + stride] - times[index] == step)
        statics = [dataset[name].transpose("latitude", "longitude").values for name in static_variables(dataset)]
        lat, lon = dataset["latitude"].values, dataset["longitude"].values
        static = grid_features(lat, lon)
        if statics:
            static = np.concatenate([static, standardise_static(statics)])
        forcing_channels(forcings)  # unknown names fail here, before any training
        return cls(z=z, times=times, normalisation=normalisation, static=static, latitude=lat, longitude=lon,
                   stride=stride, starts=index[np.asarray(contiguous)], step=step, forcings=tuple(forcings))

    @property
    def channels(self) -> int:
        return self.z.shape[1]

    @property
    def condition_channels(self) -> int:
        return condition_channels(self.channels, self.static.shape[0], self.forcings)

    def area_weights(self) -> torch.Tensor:
        """``(1, 1, H, 1)`` latitude-area weights with mean 1, for the loss."""
        lat = xr.DataArray(self.latitude, dims="latitude")
        return torch.from_numpy(latitude_weights(lat).values.astype(np.float32)).reshape(1, 1, -1, 1)

    def condition(self, previous: torch.Tensor, current: torch.Tensor, valid_times: Sequence) -> dict[str, torch.Tensor]:
        """The network condition for states ``(B, C, H, W)`` and the valid times of the predictions."""
        return build_condition(previous, current, valid_times, static=self.static, latitude=self.latitude,
                               longitude=self.longitude, forcings=self.forcings, step=self.step)

    def example(self, indices: np.ndarray) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Target normalised residuals ``(B, C, H, W)`` and conditions for window starts ``indices``."""
        z = self.z
        previous = torch.from_numpy(z[indices - self.stride])
        current = torch.from_numpy(z[indices])
        following = torch.from_numpy(z[indices + self.stride])
        scale = torch.from_numpy(self.normalisation.residual_scale).reshape(1, -1, 1, 1)
        residual = (following - current) / scale
        return residual, self.condition(previous, current, self.times[indices + self.stride])

    def source(self, *, batch_size: int, seed: int = 0) -> WindowSource:
        """A step-indexed :class:`~models.training.data.BatchSource` over these windows."""
        if len(self.starts) < batch_size:
            raise ValueError(f"{len(self.starts)} training windows cannot fill a batch of {batch_size}")
        return WindowSource(self, batch_size=batch_size, seed=seed)


@dataclass
class WindowSource:
    """Random windows for step ``k`` (seeded by ``(seed, k)``); each rank takes its slice of the global batch."""

    windows: WeatherWindows
    batch_size: int
    seed: int = 0

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> Batch:
        rng = np.random.default_rng([self.seed, step])
        chosen = rng.choice(self.windows.starts, size=self.batch_size, replace=False)
        per_rank = self.batch_size // world_size
        residual, condition = self.windows.example(chosen[rank * per_rank : (rank + 1) * per_rank])
        return Batch(x1=residual, condition=condition, weight=self.windows.area_weights())


def parse_init_times(specs: Sequence[str]) -> pd.DatetimeIndex:
    """ISO times and ``START/END/STEP`` ranges → sorted unique init times."""
    times: list[pd.Timestamp] = []
    for spec in specs:
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            if "/" in part:
                fields = part.split("/")
                if len(fields) != 3:
                    raise ValueError(f"init-time range {part!r} must be START/END/STEP")
                times += list(pd.date_range(fields[0], fields[1], freq=pd.Timedelta(fields[2])))
            else:
                times.append(pd.Timestamp(part))
    if not times:
        raise ValueError("no init times given")
    return pd.DatetimeIndex(sorted(set(times)))


def parse_lead(lead: str, step: pd.Timedelta) -> int:
    """Number of model steps in ``lead`` (``10d``, ``120h``); must be a whole multiple of ``step``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dh])\s*", lead)
    if match is None:
        raise ValueError(f"lead {lead!r} must look like 10d or 120h")
    value = float(match.group(1)) * (24 if match.group(2) == "d" else 1)
    duration = pd.Timedelta(hours=value)
    steps = duration / step
    if steps < 1 or abs(steps - round(steps)) > 1e-9:
        raise ValueError(f"lead {lead} is not a positive multiple of the model step {step}")
    return int(round(steps))
