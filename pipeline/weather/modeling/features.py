"""Conditioning features: static grid fields and time encodings.

- Static fields (channels broadcast over the grid): ``sin φ, cos φ, sin λ, cos λ`` of the cell centres,
  plus any static variable of the training store (land–sea mask, orography) standardised.
- Global features (one vector per sample) for the valid time of the predicted state:
  ``sin, cos`` of the hour of day ``2π·h/24`` and of the day of year ``2π·d/365.25``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

GLOBAL_FEATURES = 4


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
