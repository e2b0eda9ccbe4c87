"""Weather model configuration, construction, and loading a trained :class:`Forecaster` from a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field
from torch import nn

from models.objectives import ObjectiveSpec, make_objective
from models.regression import RegressionObjective
from models.training.checkpoint import CheckpointError, load_weights
from pipeline.config import StrictModel
from pipeline.geo import GridExtent, is_periodic_longitude
from pipeline.weather.modeling.data import Channel, Normalisation
from pipeline.weather.modeling.features import GLOBAL_FEATURES, condition_channels
from pipeline.weather.modeling.rollout import Forecaster

ObjectiveName = str | dict  # "mse" (deterministic baseline), a preset of models.objectives.PRESETS, or a spec


class NetworkConfig(StrictModel):
    """The denoiser. ``unet`` (default, good on CPU), ``transformer`` (patch transformer, GPU scale) or ``sfno``
    (spherical Fourier neural operator, global grids only)."""

    architecture: Literal["unet", "transformer", "sfno"] = "unet"
    base_channels: int = Field(48, description="width of the first U-Net level / transformer width ÷ 4 / SFNO "
                                                "width ÷ 2")
    channel_mults: list[int] = Field([1, 2, 2], description="U-Net width multipliers per level")
    blocks_per_level: int = 2
    attention: bool = Field(True, description="self-attention at the coarsest U-Net level")
    dropout: float = 0.0
    patch_size: int = Field(2, description="transformer patch size (grid cells)")
    depth: int = Field(8, description="transformer / SFNO blocks")
    heads: int = Field(8, description="transformer attention heads")


def build_network(config: NetworkConfig, *, channels: int, condition_channels: int, latitude: np.ndarray,
                  longitude: np.ndarray) -> nn.Module:
    """The network for ``channels`` predicted channels and ``condition_channels`` condition fields on the grid
    ``latitude × longitude``: periodic in longitude on a global grid, bounded on a regional one, padded to the
    size it needs (see :func:`grid_record`)."""
    periodic = is_periodic_longitude(longitude)
    if config.architecture == "unet":
        from models.networks.grid_unet import GridUNet

        return GridUNet(
            in_channels=channels, out_channels=channels, condition_channels=condition_channels,
            global_features=GLOBAL_FEATURES, base_channels=config.base_channels,
            channel_mults=tuple(config.channel_mults), blocks_per_level=config.blocks_per_level,
            use_attention=config.attention, dropout=config.dropout, periodic_longitude=periodic,
            grid_shape=(len(latitude), len(longitude)),
        )
    if config.architecture == "sfno":
        if not periodic:
            raise ValueError("network.architecture sfno needs a global grid (its spherical harmonics span the "
                             "sphere); use unet for a regional one")
        from models.networks.grid_sfno import GridSFNO

        return GridSFNO(in_channels=channels, out_channels=channels, condition_channels=condition_channels,
                        global_features=GLOBAL_FEATURES, latitude=latitude, longitude=longitude,
                        width=2 * config.base_channels, depth=config.depth)
    from models.networks.grid_transformer import GridTransformer

    return GridTransformer(
        in_channels=channels, out_channels=channels, condition_channels=condition_channels,
        global_features=GLOBAL_FEATURES, width=4 * config.base_channels, depth=config.depth,
        heads=config.heads, patch_size=config.patch_size, dropout=config.dropout, periodic_longitude=periodic,
    )


def grid_record(net: nn.Module, latitude: np.ndarray, longitude: np.ndarray) -> dict:
    """How the network (from :func:`build_network`) meets the grid, for the checkpoint: shape, periodicity and
    the pad/crop plan the network itself uses."""
    shape = (len(latitude), len(longitude))
    plan = net.padding(*shape)
    return {"shape": list(shape), "periodic_longitude": bool(net.periodic_longitude), "multiple": int(net.multiple),
            "padded_shape": list(plan.padded_shape(*shape)), "padding": plan.to_json()}


def objective_for(name: ObjectiveName | ObjectiveSpec):  # type: ignore[no-untyped-def]
    """``mse`` → the deterministic regression objective; otherwise a core objective (preset or spec)."""
    return RegressionObjective() if name == "mse" else make_objective(name)


def forecaster_metadata(
    *, network: NetworkConfig, net: nn.Module, objective: ObjectiveName, channels: list[Channel],
    normalisation: Normalisation,
    static: np.ndarray, latitude: np.ndarray, longitude: np.ndarray, step: pd.Timedelta, data: str,
    forcings: tuple[str, ...] = (),
) -> dict:
    """Everything needed to rebuild the forecaster, stored as JSON in every checkpoint."""
    return {
        "domain": "weather",
        "network": network.model_dump(mode="json"),
        "objective": objective,
        "channels": [[c.variable, c.level] for c in channels],
        "normalisation": json.loads(normalisation.to_json()),
        "static": np.asarray(static, dtype=np.float32).round(6).tolist(),
        "latitude": np.asarray(latitude, dtype=float).tolist(),
        "longitude": np.asarray(longitude, dtype=float).tolist(),
        "step_hours": step.total_seconds() / 3600.0,
        "data": data,
        "forcings": list(forcings),
        "grid": grid_record(net, latitude, longitude),
        "extent": GridExtent.of(latitude, longitude).to_attrs(),
    }


def load_forecaster(run: str | Path) -> tuple[Forecaster, Path]:
    """Rebuild the forecaster of a run directory (newest checkpoint, EMA weights) or a checkpoint dir.

    Returns it with the checkpoint directory used. Raises :class:`CheckpointError` for anything that is
    not a weather checkpoint.
    """
    from models.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run)
    meta = ckpt.extra
    if meta.get("domain") != "weather":
        raise CheckpointError(f"{ckpt.path}: not a weather model checkpoint (domain {meta.get('domain')!r})")
    channels = [Channel(variable, None if level is None else int(level)) for variable, level in meta["channels"]]
    static = np.asarray(meta["static"], dtype=np.float32)
    network = NetworkConfig.model_validate(meta["network"])
    forcings = tuple(meta.get("forcings", ()))  # checkpoints before the clock forcings record none
    latitude, longitude = np.asarray(meta["latitude"]), np.asarray(meta["longitude"])
    net = build_network(network, channels=len(channels), latitude=latitude, longitude=longitude,
                        condition_channels=condition_channels(len(channels), static.shape[0], forcings))
    load_weights(ckpt.path, net, ema=True)
    net.eval()
    normalisation = Normalisation.from_json(json.dumps(meta["normalisation"]))
    forecaster = Forecaster(
        net=net, objective=objective_for(meta["objective"]), normalisation=normalisation, static=static,
        latitude=latitude, longitude=longitude, channels=channels, forcings=forcings,
        step=pd.Timedelta(hours=float(meta["step_hours"])), metadata={**meta, "checkpoint_step": ckpt.step},
    )
    return forecaster, ckpt.path
