"""Conditioning features: static grid fields, the clock as forcing fields, and time encodings.

- Static fields (channels broadcast over the grid): ``sin φ, cos φ, sin λ, cos λ`` of the cell centres,
  plus any static variable of the training store (land–sea mask, orography) standardised.
- Forcing fields (channels that change with the valid time ``t`` of the predicted state, rebuilt for any
  time from the names a checkpoint records):

  * ``toa_insolation``: top-of-atmosphere incident solar radiation over the model step ending at ``t``, as a
    fraction of the solar constant: the mean of ``(r₀/r)² · max(0, cos ζ)`` at 4 instants evenly inside the
    step (midpoint rule), with the solar zenith angle ``ζ`` and the Earth–Sun distance factor of
    :mod:`pipeline.weather.solar`. GraphCast and GenCast condition on the same quantity (accumulated over
    their step).
  * ``local_time``: ``sin, cos`` of the local solar time ``2π·(UTC hours + λ/15°)/24`` at ``t``.

- Global features (one vector per sample) for the valid time of the predicted state:
  ``sin, cos`` of the UTC hour of day ``2π·h/24`` and of the day of year ``2π·d/365.25``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch

from pipeline.weather import solar

GLOBAL_FEATURES = 4

ForcingName = Literal["toa_insolation", "local_time"]
#: The clock forcings every new model conditions on (older checkpoints record none).
DEFAULT_FORCINGS: tuple[ForcingName, ...] = ("toa_insolation", "local_time")
_FORCING_CHANNELS = {"toa_insolation": 1, "local_time": 2}
_SUBSTEPS = 4


def forcing_channels(names: Sequence[str]) -> int:
    """Channels the forcings ``names`` add to the condition."""
    unknown = [n for n in names if n not in _FORCING_CHANNELS]
    if unknown:
        raise ValueError(f"unknown forcing {unknown}; available: {sorted(_FORCING_CHANNELS)}")
    return sum(_FORCING_CHANNELS[n] for n in names)


def condition_channels(channels: int, static: int, forcings: Sequence[str]) -> int:
    """Condition fields of a model of ``channels`` state channels: the two previous states, the ``static``
    fields and the forcings (see :func:`build_condition`)."""
    return 2 * channels + static + forcing_channels(forcings)


def _day_and_hour(times: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    hour = (times.hour + times.minute / 60.0 + times.second / 3600.0).to_numpy(dtype=np.float64)
    return times.day_of_year.to_numpy(dtype=np.float64), hour


def cos_zenith(times: Sequence | np.ndarray, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` cosine of the solar zenith angle (negative at night) at ``times`` (UTC)."""
    day, hour = _day_and_hour(pd.DatetimeIndex(np.asarray(times).ravel()))
    lat = np.deg2rad(np.asarray(latitude, dtype=np.float64))[None, :, None]
    lon = np.deg2rad(np.asarray(longitude, dtype=np.float64))[None, None, :]
    return solar.cos_zenith_angle(np.sin(lat), np.cos(lat), lon, hour[:, None, None],
                                  solar.declination(day)[:, None, None])


def toa_insolation(valid_times: Sequence | np.ndarray, latitude: np.ndarray, longitude: np.ndarray, *,
                   step: pd.Timedelta) -> np.ndarray:
    """``(N, H, W)`` mean TOA insolation ÷ solar constant over the step ending at each valid time."""
    ends = pd.DatetimeIndex(np.asarray(valid_times).ravel())
    total = np.zeros((len(ends), len(latitude), len(longitude)))
    for k in range(_SUBSTEPS):
        instants = ends - step * ((k + 0.5) / _SUBSTEPS)
        day, _ = _day_and_hour(instants)
        distance = solar.distance_factor(day)
        total += distance[:, None, None] * np.clip(cos_zenith(instants, latitude, longitude), 0.0, None)
    return (total / _SUBSTEPS).astype(np.float32)


def local_time(valid_times: Sequence | np.ndarray, longitude: np.ndarray, height: int) -> np.ndarray:
    """``(N, 2, H, W)`` ``sin, cos`` of the local solar time at each valid time."""
    _, hour = _day_and_hour(pd.DatetimeIndex(np.asarray(valid_times).ravel()))
    angle = 2 * np.pi * (hour[:, None] + np.asarray(longitude, dtype=np.float64)[None, :] / 15.0) / 24.0
    fields = np.stack([np.sin(angle), np.cos(angle)], axis=1)[:, :, None, :]  # (N, 2, 1, W)
    return np.broadcast_to(fields, (*fields.shape[:2], height, fields.shape[-1])).astype(np.float32)


def forcing_fields(names: Sequence[str], valid_times: Sequence | np.ndarray, latitude: np.ndarray,
                   longitude: np.ndarray, *, step: pd.Timedelta) -> np.ndarray:
    """``(N, F, H, W)`` forcing channels ``names`` at ``valid_times`` (``F = forcing_channels(names)``)."""
    n = len(np.asarray(valid_times).ravel())
    parts = [np.zeros((n, 0, len(latitude), len(longitude)), dtype=np.float32)]
    for name in names:
        if name == "toa_insolation":
            parts.append(toa_insolation(valid_times, latitude, longitude, step=step)[:, None])
        elif name == "local_time":
            parts.append(local_time(valid_times, longitude, len(latitude)))
        else:
            forcing_channels([name])  # raises naming the forcing
    return np.concatenate(parts, axis=1)


def build_condition(previous: torch.Tensor, current: torch.Tensor, valid_times: Sequence, *, static: np.ndarray,
                    latitude: np.ndarray, longitude: np.ndarray, forcings: Sequence[str],
                    step: pd.Timedelta) -> dict[str, torch.Tensor]:
    """The network condition of one step: fields ``[z_prev, z_cur, static, forcings(t)]`` ``(B, 2C+S+F, H, W)``
    and the global time features of the valid times ``t`` of the predictions."""
    batch = current.shape[0]
    parts = [previous, current, torch.from_numpy(static).to(current).expand(batch, -1, -1, -1)]
    if forcings:
        parts.append(torch.from_numpy(forcing_fields(forcings, valid_times, latitude, longitude, step=step)).to(current))
    return {"fields": torch.cat(parts, dim=1), "globals": torch.from_numpy(time_features(valid_times)).to(current)}


def grid_features(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """``(4, H, W)`` float32: ``sin φ, cos φ, sin λ, cos λ``."""
    lat = np.deg2rad(np.asarray(latitude, dtype=np.float64))[:, None]
    lon = np.deg2rad(np.asarray(longitude, dtype=np.float64))[None, :]
    shape = (lat.size, lon.size)
    return np.stack(
        [np.broadcast_to(np.sin(lat), shape), np.broadcast_to(np.cos(lat), shape),
         np.broadcast_to(np.sin(lon), shape), np.broadcast_to(np.cos(lon), shape)]
    ).astype(np.float32)


def standardise_static(fields: Sequence[np.ndarray]) -> np.ndarray:
    """Stack static fields ``(S, H, W)``, each scaled to zero mean and unit std (constant fields → 0)."""
    if not fields:
        return np.zeros((0, 0, 0), dtype=np.float32)
    out = []
    for field in fields:
        field = np.nan_to_num(np.asarray(field, dtype=np.float64))
        std = field.std()
        out.append((field - field.mean()) / (std if std > 0 else 1.0))
    return np.stack(out).astype(np.float32)


def time_features(valid_times: Sequence | np.ndarray) -> np.ndarray:
    """``(N, 4)`` float32 encodings of the hour of day and day of year of each valid time."""
    times = pd.DatetimeIndex(np.asarray(valid_times).ravel())
    hour = (times.hour + times.minute / 60.0).to_numpy(dtype=np.float64)
    day = (times.day_of_year - 1 + hour / 24.0).astype(np.float64)
    angle_h = 2 * np.pi * hour / 24.0
    angle_d = 2 * np.pi * day / 365.25
    return np.stack([np.sin(angle_h), np.cos(angle_h), np.sin(angle_d), np.cos(angle_d)], axis=-1).astype(
        np.float32
    )
