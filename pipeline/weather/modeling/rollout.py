"""Autoregressive ensemble rollout.

One model step maps the two latest normalised states ``(z_prev, z_cur)`` to ``z_next = z_cur + s ⊙ r``
where ``r`` is a normalised residual and ``s = σ_Δ/σ`` per channel (see
:class:`~pipeline.weather.modeling.data.Normalisation`). A flow-matching model draws ``r`` by
integrating its velocity from fresh noise (any sampler and step count of :mod:`models.samplers`); a
deterministic (MSE) model predicts ``r`` in one call. All members of all init times in a chunk are one
batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from models.objectives import Objective
from models.regression import RegressionObjective
from models.samplers import Denoiser, sample
from pipeline.weather.modeling.data import Channel, Normalisation, stack_channels
from pipeline.weather.modeling.features import build_condition
from pipeline.weather.schema import CANONICAL

NoiseScale = float | dict[str, float]
"""Sampler noise size λ: one value for every channel, or one per variable (``temperature``, all its levels)
or per channel (``temperature_850``); a channel's own entry wins over its variable's."""


def describe_noise_scale(noise_scale: NoiseScale) -> str:
    """``0.600`` or ``geopotential 0.571, temperature 0.610`` (for logs and the command line)."""
    if not isinstance(noise_scale, dict):
        return f"{noise_scale:.3f}"
    return ", ".join(f"{name} {value:.3f}" for name, value in noise_scale.items())


def channel_noise_scales(channels: Sequence[Channel], noise_scale: NoiseScale) -> np.ndarray:
    """λ per channel, ``(C,)``. Raises ValueError when a channel has no value or a name matches none."""
    if not isinstance(noise_scale, dict):
        values = np.full(len(channels), float(noise_scale))
    else:
        unknown = set(noise_scale) - {c.name for c in channels} - {c.variable for c in channels}
        if unknown:
            raise ValueError(f"noise scale given for {sorted(unknown)}, which the model does not have; its "
                             f"variables are {sorted({c.variable for c in channels})}")
        missing = [c.name for c in channels if c.name not in noise_scale and c.variable not in noise_scale]
        if missing:
            raise ValueError(f"no noise scale for {missing}: give one per variable (or per channel)")
        values = np.array([float(noise_scale.get(c.name, noise_scale.get(c.variable))) for c in channels])
    if not np.all(values > 0):
        raise ValueError(f"noise scales must be positive, got {noise_scale}")
    return values


@dataclass
class Forecaster:
    """A trained weather model with everything needed to step it: network, objective (a
    :class:`~models.regression.RegressionObjective` for a deterministic model), normalisation, static
    features, grid, channels and step."""

    net: nn.Module
    objective: Objective | RegressionObjective
    normalisation: Normalisation
    static: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    channels: list[Channel]
    step: pd.Timedelta
    metadata: dict = field(default_factory=dict)
    forcings: tuple[str, ...] = ()

    @property
    def deterministic(self) -> bool:
        return isinstance(self.objective, RegressionObjective)

    def condition(self, previous: torch.Tensor, current: torch.Tensor, valid_times: Sequence) -> dict:
        return build_condition(previous, current, valid_times, static=self.static, latitude=self.latitude,
                               longitude=self.longitude, forcings=self.forcings, step=self.step)

    @torch.no_grad()
    def residual(
        self,
        previous: torch.Tensor,
        current: torch.Tensor,
        valid_times: Sequence,
        *,
        sampler: str = "heun",
        steps: int = 8,
        guidance: float | None = None,
        generator: torch.Generator | None = None,
        noise_scale: NoiseScale = 1.0,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, int]:
        """Normalised residuals ``(B, C, H, W)`` for one model step, and the network calls spent.

        The sampler starts from ``λ·ε`` with ``ε = noise`` (standard normal; drawn here when ``None``):
        ``noise_scale`` λ (per channel where a mapping) sizes it (see
        :mod:`~pipeline.weather.modeling.calibrate`)."""
        condition = self.condition(previous, current, valid_times)
        if self.deterministic:
            return self.objective.predict(self.net, current, None, condition).x1, 1
        denoiser = Denoiser(self.net, self.objective, condition=condition, guidance=guidance)
        if noise is None:
            noise = torch.randn(current.shape, generator=generator, dtype=current.dtype, device=current.device)
        scales = torch.from_numpy(channel_noise_scales(self.channels, noise_scale)).to(noise)
        result = sample(denoiser, scales.reshape(1, -1, 1, 1) * noise, sampler=sampler, steps=steps, generator=generator)
        return result.samples, result.nfe


@dataclass(frozen=True)
class RolloutResult:
    """``states``: ``(N_init, n_steps, members, C, H, W)`` physical units; ``nfe``: network calls per step."""

    states: np.ndarray
    lead_times: pd.TimedeltaIndex
    nfe_per_step: int


def rollout(
    forecaster: Forecaster,
    *,
    history: np.ndarray,
    init_times: Sequence,
    n_steps: int,
    members: int,
    sampler: str = "heun",
    sampler_steps: int = 8,
    guidance: float | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    noise_scale: NoiseScale = 1.0,
    noise_memory: float = 0.0,
    on_step: Callable[[int], None] | None = None,
) -> RolloutResult:
    """Roll ``members`` trajectories of ``n_steps`` model steps from each init time.

    ``history`` is ``(N_init, 2, C, H, W)`` in physical units: the states one model step before and at
    each init time. A deterministic model gives identical members, so pass ``members=1`` for it.
    ``on_step`` is called with the number of (chunk) steps done, for progress bars.
    """
    init = pd.DatetimeIndex(init_times)
    channel_noise_scales(forecaster.channels, noise_scale)  # a bad mapping fails before any work
    if history.shape[0] != len(init) or history.shape[1] != 2:
        raise ValueError(f"history must be (N_init={len(init)}, 2, C, H, W), got {history.shape}")
    norm = forecaster.normalisation
    z0 = np.stack([norm.encode(history[:, 0]), norm.encode(history[:, 1])], axis=1).astype(np.float32)
    scale = torch.from_numpy(norm.residual_scale).reshape(1, -1, 1, 1).to(device)
    leads = pd.TimedeltaIndex([forecaster.step * (k + 1) for k in range(n_steps)])
    total = len(init) * members
    out = np.empty((total, n_steps) + history.shape[2:], dtype=np.float32)
    init_of_sample = np.repeat(np.arange(len(init)), members)
    nfe = 0
    forecaster.net.to(device).eval()
    member_of_sample = np.tile(np.arange(members), len(init))
    for begin in range(0, total, batch_size):
        rows = np.arange(begin, min(begin + batch_size, total))
        streams = [member_generator(seed, init[init_of_sample[r]], int(member_of_sample[r]), device=device)
                   for r in rows]
        generator = member_generator(seed, init[init_of_sample[rows[0]]], -1 - int(member_of_sample[rows[0]]),
                                     device=device)  # a stochastic sampler's own noise
        previous = torch.from_numpy(z0[init_of_sample[rows], 0]).to(device)
        current = torch.from_numpy(z0[init_of_sample[rows], 1]).to(device)
        noise = None
        for k in range(n_steps):
            valid = init[init_of_sample[rows]] + leads[k]
            fresh = torch.stack([torch.randn(current.shape[1:], generator=g, dtype=current.dtype,
                                             device=current.device) for g in streams])
            # AR(1) in the step index: each step's ε is still N(0, I), consecutive ones correlate by ρ
            noise = fresh if noise is None else noise_memory * noise + (1 - noise_memory**2) ** 0.5 * fresh
            residual, nfe = forecaster.residual(
                previous, current, valid, sampler=sampler, steps=sampler_steps, guidance=guidance,
                generator=generator, noise_scale=noise_scale, noise=noise,
            )
            previous, current = current, current + scale * residual
            out[rows, k] = norm.decode(current.cpu().numpy())
            if on_step is not None:
                on_step(1)
    states = out.reshape((len(init), members, n_steps) + history.shape[2:]).transpose(0, 2, 1, 3, 4, 5)
    return RolloutResult(states=np.ascontiguousarray(states), lead_times=leads, nfe_per_step=nfe)


def member_generator(seed: int, init_time: pd.Timestamp, member: int, *, device: str | torch.device = "cpu"
                     ) -> torch.Generator:
    """The random stream of one member of one cycle, from ``(seed, init time, member)`` alone: a cycle's members
    are the same whichever other cycles share its batch, and whether the run was resumed or re-ordered."""
    entropy = [int(seed) & 0xFFFFFFFF, int(pd.Timestamp(init_time).value) & 0xFFFFFFFF,
               (int(pd.Timestamp(init_time).value) >> 32) & 0xFFFFFFFF, int(member) & 0xFFFFFFFF]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 32 | int(state[1]))


def scale_spread(states: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``x̄ + α[k, c]·(x_m − x̄)`` of ``states`` ``(N_init, K, members, C, H, W)``: every member's deviation from
    the ensemble mean scaled per lead ``k`` and channel ``c`` by ``factors`` ``(K_fit, C)``; leads past the
    last fitted one keep its factor. The ensemble mean is unchanged."""
    steps = states.shape[1]
    alpha = np.asarray(factors, dtype=states.dtype)[np.minimum(np.arange(steps), len(factors) - 1)]
    mean = states.mean(axis=2, keepdims=True)
    return mean + alpha[None, :, None, :, None, None] * (states - mean)


def forecast_dataset(
    result: RolloutResult, forecaster: Forecaster, *, init_times: Sequence, attrs: dict | None = None
) -> xr.Dataset:
    """The rollout as a dataset in the forecast schema: ``(init_time, lead_time, member, [level],
    latitude, longitude)``, physical units, canonical names (units attrs from the schema)."""
    init = pd.DatetimeIndex(init_times)
    members = result.states.shape[2]
    coords = {
        "init_time": init.values,
        "lead_time": result.lead_times.values,
        "member": np.arange(members),
        "latitude": forecaster.latitude,
        "longitude": forecaster.longitude,
    }
    variables: dict[str, list[tuple[int | None, int]]] = {}
    for index, channel in enumerate(forecaster.channels):
        variables.setdefault(channel.variable, []).append((channel.level, index))
    data_vars = {}
    base_dims = ("init_time", "lead_time", "member")
    for name, entries in variables.items():
        var_attrs = {"units": CANONICAL[name].units} if name in CANONICAL else {}
        if entries[0][0] is None:
            data_vars[name] = xr.Variable(base_dims + ("latitude", "longitude"), result.states[:, :, :, entries[0][1]],
                                          attrs=var_attrs)
        else:
            levels = [level for level, _ in entries]
            stacked = np.stack([result.states[:, :, :, i] for _, i in entries], axis=3)
            data_vars[name] = xr.Variable(base_dims + ("level", "latitude", "longitude"), stacked, attrs=var_attrs)
            coords.setdefault("level", np.asarray(levels, dtype=np.int32))
    return xr.Dataset(data_vars, coords=coords, attrs=attrs or {})


def check_can_start(forecaster: Forecaster, truth: xr.Dataset, init_times: pd.DatetimeIndex) -> None:
    """Raise ValueError unless the data hold every state, variable and the grid the forecasts need."""
    available = pd.DatetimeIndex(truth["time"].values)
    missing = init_times.append(init_times - forecaster.step).difference(available)
    if len(missing):
        first = missing[0]
        wanted = [t for t in init_times if t == first or t - forecaster.step == first]
        span = f"{available[0]:%Y-%m-%dT%H:%M} … {available[-1]:%Y-%m-%dT%H:%M}" if len(available) else "no times"
        raise ValueError(f"init time {wanted[0]:%Y-%m-%dT%H:%M} needs the state at {first:%Y-%m-%dT%H:%M}, which "
                         f"the data do not hold (they cover {span}); pick init times inside the data")
    lat, lon = truth["latitude"].values, truth["longitude"].values
    if lat.shape != forecaster.latitude.shape or not np.allclose(lat, forecaster.latitude) \
            or lon.shape != forecaster.longitude.shape or not np.allclose(lon, forecaster.longitude):
        raise ValueError("the data's grid differs from the grid the model was trained on")
    for channel in forecaster.channels:
        if channel.variable not in truth:
            raise ValueError(f"the data have no variable {channel.variable!r} that the model needs")


def initial_history(forecaster: Forecaster, truth: xr.Dataset, init_times: pd.DatetimeIndex) -> np.ndarray:
    """``(N, 2, C, H, W)``: the truth at ``init - step`` and ``init`` (physical units)."""
    previous = stack_channels(truth.sel(time=(init_times - forecaster.step).values), forecaster.channels)
    current = stack_channels(truth.sel(time=init_times.values), forecaster.channels)
    return np.stack([previous, current], axis=1)
