"""The perfect-model ensemble: the same Held–Suarez core restarted from perturbed truth states.

For each init time the exact modal state saved with the truth run (group ``model_state``) is copied
``members`` times and each copy is perturbed (``perturbation``):

* ``state-difference`` (default): ε·(X_a − X_b), the difference of two random states of the truth run
  (all modal fields: vorticity, divergence, T', log p_s), a balanced, multivariate perturbation on the
  model's attractor; ε (random sign) is chosen per member so that its temperature part is ``amplitude_k`` K rms over
  the grid and sigma levels (default 0.5 K, a typical analysis error);
* ``white-noise``: temperature only, noise spectrally white up to the truncation, ``amplitude_k`` K rms at
  every sigma level (mostly projects onto damped modes: grows slowly).
* ``unobserved``: the honest predictability ceiling of a model that sees only the store. Every member holds
  the store's channels (T, Φ, u, v on the pressure levels, p_s) exactly at the initial time and differs only
  in what the store does not keep: the flow and temperature between and beyond the pressure levels. The
  perturbation is a climatological anomaly of the state, (X_a − X_b)/√2 of two random truth states (the
  difference of two independent states has twice a state's variance), with log p_s left alone and its
  observed part removed: δ = δ₀ − J⁺Jδ₀, where J maps (vorticity, divergence, T') to the stored channels
  (linear while p_s, and with it the σ→p interpolation weights, is held fixed) and J⁺Jδ₀ is the least-squares
  solution found by CGLS (until ‖Jδ‖ ≤ ``UNOBSERVED_TOLERANCE``·‖Jδ₀‖, at most ``UNOBSERVED_ITERATIONS``
  iterations; J is ill-conditioned, as the interpolation weights vary with p_s, so CGLS converges slowly;
  the footprint left, the largest over an init time's members, is the ``observed_footprint`` coordinate).
  Sized by the marginal variance of the unobserved part, the spread at the initial time is an upper bound:
  what the stored channels imply about the hidden part through its correlations beyond J is not used.
  ``amplitude_k`` does not apply.

All members of a few init times are integrated together (a batch axis of up to ``BATCH_MEMBERS``)
for ``lead`` and written every output interval in the forecast schema:
``NAME(init_time, lead_time, member, level, latitude, longitude)`` and surface
``NAME(init_time, lead_time, member, latitude, longitude)``, with ``valid_time = init_time + lead_time``.
With ``amplitude_k = 0`` every member reproduces the truth run (a test of exact restarts).

**Exchangeable truth** (``exchangeable=True``, the default): members are perturbations of an *analysis*
that is itself the truth plus one more perturbation of the same kind, ``a = x + δ``,
``member_m = a + ε_m`` with ``δ`` and ``ε_m`` drawn alike. The truth is then statistically one more member,
as a reliable ensemble needs (spread/skill ≈ 1); centred on the exact truth, the ensemble mean would sit
on the truth and the spread/skill ratio would be far above 1.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.errors import UserError
from pipeline.provenance import provenance_record
from pipeline.weather.simulate.cache import CITATION, STATE_GROUP
from pipeline.weather.simulate.model import AtmosphereConfig, AtmosphereModel, ModalState, state_from_numpy

DEFAULT_AMPLITUDE_K = 0.5
ANALYSIS_SEED_OFFSET = 1_000_003  # seeds of the analysis offsets δ, apart from the members' seeds
BATCH_MEMBERS = 24  # init times are integrated together up to this many members (~20 % cheaper per member
#                     than 5 at a time on 2 cores; larger batches fall out of cache)
UNOBSERVED_TOLERANCE = 0.01  # the projection stops once ‖Jδ‖ ≤ 1 % of ‖Jδ₀‖ for every member …
UNOBSERVED_ITERATIONS = 3000  # … or after this many CGLS iterations (~1,000 on the default T21 run, 12 s)
Perturbation = Literal["state-difference", "white-noise", "unobserved"]
MODAL_FIELDS = ("vorticity", "divergence", "temperature_variation", "log_surface_pressure")


def _truth_config(ds: xr.Dataset, path: str) -> AtmosphereConfig:
    raw = ds.attrs.get("simulator_config")
    if raw is None:
        raise UserError(
            "not a simulation of the embedded atmosphere (no simulator_config attribute); "
            "make one with `velocast simulate atmosphere --out STORE`", path=path,
        )
    if isinstance(raw, str):
        raw = json.loads(raw)
    return AtmosphereConfig.model_validate(raw)


def _states_at(path: str, times: Sequence[np.datetime64]) -> list[ModalState]:
    try:
        st = xr.open_zarr(path, group=STATE_GROUP, chunks={})
    except (FileNotFoundError, KeyError, OSError, ValueError):
        raise UserError(f"has no `{STATE_GROUP}` group to restart the model from", path=path) from None
    have = pd.DatetimeIndex(st["time"].values)
    out = []
    for t in times:
        if pd.Timestamp(t) not in have:
            raise UserError(
                f"init time {pd.Timestamp(t)} is not a stored time ({have[0]} … {have[-1]}, every "
                f"{(have[1] - have[0]) if len(have) > 1 else 'n/a'})", path=path,
            )
        one = st.sel(time=t).load()
        arrays = {k: one[k].values for k in ("vorticity", "divergence", "temperature_variation")}
        arrays["log_surface_pressure"] = one["log_surface_pressure"].values[None]
        out.append(state_from_numpy(arrays))
    return out


def _state_differences(truth: str, members: int, rng: np.random.Generator) -> dict:
    """X_a − X_b of ``members`` random pairs (a ≠ b) of the truth run's stored modal states, per field."""
    import torch

    st = xr.open_zarr(truth, group=STATE_GROUP, chunks={})
    n = st.sizes["time"]
    if n < 2:
        raise UserError("the truth run needs at least 2 stored states for state-difference perturbations", path=truth)
    a = rng.integers(0, n, size=members)
    b = (a + rng.integers(1, n, size=members)) % n  # b != a
    idx = np.unique(np.concatenate([a, b]))
    loaded = st.isel(time=idx).load()
    pos = {int(t): k for k, t in enumerate(idx)}

    def field(name: str, which: np.ndarray) -> torch.Tensor:
        arr = loaded[name].values[[pos[int(t)] for t in which]]
        if name == "log_surface_pressure":
            arr = arr[:, None]
        return torch.from_numpy(np.ascontiguousarray(arr, np.float32))

    return {k: field(k, a) - field(k, b) for k in MODAL_FIELDS}


def perturb_state_difference(
    model: AtmosphereModel, state: ModalState, *, members: int, amplitude_k: float, seed: int, truth: str
) -> ModalState:
    """``members`` copies of ``state`` plus ε·(X_a − X_b) for random pairs of truth states (see module)."""
    import torch

    rng = np.random.default_rng(seed)
    diff = _state_differences(truth, members, rng)
    nodal_t = model.grid.to_nodal(diff["temperature_variation"])
    rms = nodal_t.pow(2).mean(dim=(-3, -2, -1)).sqrt().clamp(min=1e-12)
    sign = torch.from_numpy(rng.choice([-1.0, 1.0], size=members).astype(np.float32))
    eps = (sign * float(amplitude_k) / rms).reshape(members, 1, 1, 1)
    return _copies_plus(state, members, {name: eps * value for name, value in diff.items()})


def perturb_unobserved(
    model: AtmosphereModel, state: ModalState, *, members: int, seed: int, truth: str,
    iterations: int | None = None, tolerance: float | None = None,
) -> tuple[ModalState, float]:
    """``members`` copies of ``state`` that keep its stored channels and differ in the rest (see module);
    also the largest remaining footprint ‖Jδ‖ / ‖Jδ₀‖ over the members. ``iterations`` and ``tolerance``
    default to ``UNOBSERVED_ITERATIONS`` and ``UNOBSERVED_TOLERANCE``."""
    diff = _state_differences(truth, members, np.random.default_rng(seed))
    delta0 = {k: diff[k] / np.sqrt(2.0) for k in MODAL_FIELDS[:3]}
    delta, footprint = project_out_observed(
        model, state, delta0,
        iterations=UNOBSERVED_ITERATIONS if iterations is None else iterations,
        tolerance=UNOBSERVED_TOLERANCE if tolerance is None else tolerance,
    )
    return _copies_plus(state, members, delta), footprint


def project_out_observed(
    model: AtmosphereModel, state: ModalState, delta0: dict, *, iterations: int, tolerance: float = 0.0
) -> tuple[dict, float]:
    """δ₀ − J⁺Jδ₀ for a batch of perturbations of (vorticity, divergence, T') of one state, with J the
    Jacobian of the stored channels (:meth:`AtmosphereModel.observed` at the state's p_s); CGLS solves
    min ‖W(Jc − Jδ₀)‖ per member, W making each variable's part of Jδ₀ of unit rms (which sets only how fast
    CGLS converges: J's null space does not depend on it), for ``iterations`` or until
    ‖W Jδ‖ ≤ ``tolerance``·‖W Jδ₀‖ for every member. Returns δ and max ‖W Jδ‖ / ‖W Jδ₀‖ over the members."""
    import torch

    names = tuple(delta0)
    members = next(iter(delta0.values())).shape[0]
    batch = {k: getattr(state, k).expand(members, *getattr(state, k).shape[-3:]) for k in MODAL_FIELDS}
    with torch.no_grad():
        base = model.observed(ModalState(**batch))
    valid = {k: (delta0[k] != 0).any(dim=0, keepdim=True) for k in names}  # modal slots the truncation uses

    def forward(d: dict) -> list:
        levels, _, near = model.observed(ModalState(**{**batch, **{k: batch[k] + d[k] for k in names}}))
        return [levels - base[0]] + ([near - base[2]] if near is not None else [])

    with torch.no_grad():
        first = forward(delta0)
    # per-variable weights: T, Φ, u, v (and the near-surface T) each of unit rms in Jδ₀
    weights = [part.pow(2).mean(dim=tuple(range(1, part.ndim)), keepdim=True).rsqrt() if i == 0
               else part.pow(2).mean().rsqrt() for i, part in enumerate(first)]

    def apply(d: dict) -> list:  # W J d
        return [w * part for w, part in zip(weights, forward(d))]

    def adjoint(r: list) -> dict:  # Jᵀ Wᵀ r, restricted to the truncation
        d = {k: torch.zeros_like(delta0[k], requires_grad=True) for k in names}
        grads = torch.autograd.grad(apply(d), [d[k] for k in names], grad_outputs=r)
        return {k: g * valid[k] for k, g in zip(names, grads)}

    def norm2_obs(parts: list) -> torch.Tensor:  # per member (member axis is 1 of the levels, 0 of near)
        total = parts[0].pow(2).sum(dim=(0, *range(2, parts[0].ndim)))
        for part in parts[1:]:
            total = total + part.pow(2).sum(dim=tuple(range(1, part.ndim)))
        return total

    def norm2_state(d: dict) -> torch.Tensor:
        return sum(v.pow(2).sum(dim=tuple(range(1, v.ndim))) for v in d.values())

    def per_member(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return x.reshape(members, *([1] * (like.ndim - 1)))

    def scale_obs(parts: list, x: torch.Tensor) -> list:
        out = [parts[0] * x.reshape(1, members, *([1] * (parts[0].ndim - 2)))]
        return out + [p * per_member(x, p) for p in parts[1:]]

    # CGLS for min ‖A c − b‖ with A = W J, b = W J δ₀, independently per member
    with torch.no_grad():
        b = apply(delta0)
    c = {k: torch.zeros_like(v) for k, v in delta0.items()}
    r = [part.clone() for part in b]
    s = adjoint(r)
    p = {k: v.clone() for k, v in s.items()}
    gamma = norm2_state(s)
    target = norm2_obs(b) * tolerance**2
    for _ in range(iterations):
        if bool((norm2_obs(r) <= target).all()):  # r = W J (δ₀ − c) = W J δ
            break
        with torch.no_grad():
            q = apply(p)
            alpha = gamma / norm2_obs(q).clamp(min=1e-30)
            c = {k: c[k] + per_member(alpha, c[k]) * p[k] for k in names}
            r = [ri - qi for ri, qi in zip(r, scale_obs(q, alpha))]
        s = adjoint(r)
        with torch.no_grad():
            gamma_next = norm2_state(s)
            beta = gamma_next / gamma.clamp(min=1e-30)
            p = {k: s[k] + per_member(beta, s[k]) * p[k] for k in names}
            gamma = gamma_next
    with torch.no_grad():
        delta = {k: delta0[k] - c[k] for k in names}
        footprint = (norm2_obs(apply(delta)) / norm2_obs(b).clamp(min=1e-30)).sqrt().max()
    return delta, float(footprint)


def _copies_plus(state: ModalState, members: int, delta: dict) -> ModalState:
    """``members`` copies of ``state`` with ``delta[field]`` added to the named fields."""
    def field(name: str):  # type: ignore[no-untyped-def]
        copies = getattr(state, name).expand(members, *getattr(state, name).shape[-3:]).clone()
        return copies + delta[name] if name in delta else copies

    return ModalState(vorticity=field("vorticity"), divergence=field("divergence"),
                      temperature_variation=field("temperature_variation"),
                      log_surface_pressure=field("log_surface_pressure"))


def perturb_scaled(model: AtmosphereModel, state: ModalState, *, members: int, amplitude_k: float, seed: int) -> ModalState:
    """``members`` copies of ``state`` with T' perturbed by ``amplitude_k`` K rms per level (see module)."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    grid = model.grid
    layers = model.config.layers
    noise = torch.randn((members, layers, *grid.nodal_shape), generator=g, dtype=torch.float32)
    modal = grid.clip_wavenumbers(grid.to_modal(noise))
    nodal = grid.to_nodal(modal)
    rms = nodal.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt().clamp(min=1e-12)
    modal = grid.to_modal(nodal / rms * float(amplitude_k)) if amplitude_k else torch.zeros_like(modal)
    return _copies_plus(state, members, {"temperature_variation": modal})


def iter_perfect_model_ensemble(
    *,
    truth: str | Path,
    init_times: Sequence[Any],
    members: int,
    lead: str | pd.Timedelta = "10D",
    amplitude_k: float | None = None,
    perturbation: Perturbation = "state-difference",
    exchangeable: bool = True,
    seed: int = 0,
    compile: bool | None = None,
    progress: bool = True,
) -> Iterator[xr.Dataset]:
    """The perfect-model ensemble one init time at a time (each a dataset with ``init_time`` of size 1):
    memory stays bounded by one batch of init times. Arguments as :func:`perfect_model_ensemble`."""
    from pipeline.console import make_progress

    path = str(truth)
    if not Path(path).exists():
        raise UserError("truth store not found", path=path)
    root = xr.open_zarr(path, chunks={})
    config = _truth_config(root, path)
    if members < 1:
        raise UserError("--members must be at least 1")
    if perturbation == "unobserved" and amplitude_k is not None:
        raise UserError("unobserved perturbations are sized by the climate of the unobserved state; "
                        "drop --amplitude (it sizes state-difference and white-noise perturbations)")
    if amplitude_k is None and perturbation != "unobserved":
        amplitude_k = DEFAULT_AMPLITUDE_K
    lead_td = pd.Timedelta(lead)
    step = pd.Timedelta(hours=config.output_hours)
    if lead_td <= pd.Timedelta(0) or lead_td % step:
        raise UserError(f"lead {lead} must be a positive multiple of the output step {step}")
    n_lead = int(lead_td / step) + 1
    times = [np.datetime64(pd.Timestamp(t).to_datetime64(), "ns") for t in init_times]
    if not times:
        raise UserError("give at least one init time")
    states = _states_at(path, times)
    if compile is None:  # compiling costs minutes on busy cores: only worth it for long integrations
        compile = len(times) * members * (lead_td / pd.Timedelta(days=1)) > 200
    model = AtmosphereModel(config, compile=compile)
    lead_times = (np.arange(n_lead) * step.to_timedelta64()).astype("timedelta64[ns]")
    attrs = {
        "title": "Perfect-model ensemble of the embedded Held-Suarez atmosphere",
        "citation": CITATION,
        "simulator_config": json.loads(config.model_dump_json()),
        "perturbation": (
            f"{perturbation}: "
            + {"state-difference": f"eps*(X_a - X_b) of random truth states, T part {amplitude_k} K rms",
               "white-noise": f"T' + white noise truncated at {config.resolution}, per sigma level, "
                              f"{amplitude_k} K rms",
               "unobserved": "(X_a - X_b)/sqrt(2) of random truth states with log p_s kept and the part the "
                             "stored channels see removed (CGLS); footprint left per init time in the "
                             "observed_footprint coordinate"}[perturbation]
            + f"; seed {seed} + init index"
        ),
        "amplitude_k": float(amplitude_k) if amplitude_k is not None else None,
        "provenance": provenance_record(
            kind="velocast perfect-model ensemble", source=path, members=members, lead=str(lead_td),
            seed=seed, truth_provenance=root.attrs.get("provenance"),
        ),
    }
    footprints: dict[int, float] = {}

    def perturb(base: ModalState, count: int, draw_seed: int, init: int) -> ModalState:
        if perturbation == "unobserved":
            batch, footprint = perturb_unobserved(model, base, members=count, seed=draw_seed, truth=path)
            footprints[init] = max(footprints.get(init, 0.0), footprint)
            return batch
        if perturbation == "state-difference" and amplitude_k:
            return perturb_state_difference(model, base, members=count, amplitude_k=amplitude_k, seed=draw_seed,
                                            truth=path)
        return perturb_scaled(model, base, members=count, amplitude_k=amplitude_k, seed=draw_seed)

    # one batch steps under one clock: a run with diurnal heating advances one init time at a time
    group = 1 if model.diurnal else max(1, BATCH_MEMBERS // members)
    with make_progress(transient=not progress) as bar:
        task = bar.add_task("perfect-model ensemble", total=len(times) * (n_lead - 1), visible=progress)
        for first in range(0, len(times), group):
            inits = range(first, min(first + group, len(times)))
            parts = []
            for i in inits:
                analysis = perturb(states[i], 1, ANALYSIS_SEED_OFFSET + seed + i, i) if exchangeable else states[i]
                parts.append(perturb(analysis, members, seed + i, i))
            batch = concat_states(parts)
            frames = [model.fields(batch)]
            hours = (pd.Timestamp(times[first]) - pd.Timestamp(config.start)) / pd.Timedelta(hours=1)
            for j in range(n_lead - 1):
                batch = model.advance(batch, model.steps_per_output, hours=hours + j * config.output_hours)
                frames.append(model.fields(batch))
                bar.advance(task, len(parts))
            for k, i in enumerate(inits):
                members_of_i = slice(k * members, (k + 1) * members)
                part = _forecast_dataset(
                    {name: np.stack([f[name][members_of_i] for f in frames])[None] for name in frames[0]},
                    init=times[i], lead_times=lead_times, members=members, root=root, config=config, attrs=attrs,
                )
                if i in footprints:  # ‖Jδ‖ / ‖Jδ₀‖: how much of the removed observed part the projection left
                    part = part.assign_coords(observed_footprint=("init_time", [footprints[i]]))
                yield part


def concat_states(states: Sequence[ModalState]) -> ModalState:
    """One batch from several batched states (along the leading axis)."""
    import torch

    return ModalState(*(torch.cat([getattr(s, f) for s in states]) for f in (
        "vorticity", "divergence", "temperature_variation", "log_surface_pressure")))


def _forecast_dataset(
    arrays: dict[str, np.ndarray], *, init: np.datetime64, lead_times: np.ndarray, members: int, root: xr.Dataset,
    config: AtmosphereConfig, attrs: dict[str, Any],
) -> xr.Dataset:
    """One init time in the forecast schema from ``NAME: (1 init, lead, member, [level,] lat, lon)`` arrays."""
    data = {}
    for name, arr in arrays.items():
        dims = ("init_time", "lead_time", "member") + (("level",) if arr.ndim == 6 else ()) + ("latitude", "longitude")
        data[name] = (dims, arr, {"units": root[name].attrs.get("units", "")} if name in root else {})
    init_index = np.asarray([init], dtype="datetime64[ns]")
    return xr.Dataset(
        data,
        coords={
            "init_time": init_index,
            "lead_time": lead_times,
            "member": np.arange(members, dtype=np.int32),
            "level": ("level", np.asarray(config.levels, np.int32), {"units": "hPa"}),
            "latitude": ("latitude", root["latitude"].values, {"units": "degrees_north"}),
            "longitude": ("longitude", root["longitude"].values, {"units": "degrees_east"}),
            "valid_time": (("init_time", "lead_time"), init_index[:, None] + lead_times[None, :]),
        },
        attrs=attrs,
    )


def perfect_model_ensemble(**kwargs: Any) -> xr.Dataset:
    """The perfect-model ensemble (in memory) from the truth store ``truth`` (a simulation written by
    ``velocast simulate atmosphere`` or its cache); keyword arguments as :func:`iter_perfect_model_ensemble`.
    Member perturbations of init time i use seed ``seed + i``. Dims: ``NAME(init_time, lead_time, member,
    [level,] latitude, longitude)``."""
    parts = list(iter_perfect_model_ensemble(**kwargs))
    return xr.concat(parts, dim="init_time", data_vars="minimal", coords="minimal", combine_attrs="override")


def write_perfect_model_ensemble(*, out: str | Path, overwrite: bool = False, **kwargs: Any) -> xr.Dataset:
    """Integrate and write the ensemble init time by init time into a plain Zarr v3 store at ``out`` (see
    :func:`write_forecast_zarr`); keyword arguments as :func:`iter_perfect_model_ensemble`. Returns the written
    store opened lazily."""
    return xr.open_zarr(write_forecast_zarr(iter_perfect_model_ensemble(**kwargs), out, overwrite=overwrite))


def write_forecast_zarr(parts: xr.Dataset | Iterable[xr.Dataset], out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a forecast-schema dataset (or its parts along ``init_time``, one after another: memory stays bounded
    by one part) as a plain Zarr v3 store, atomically (temp dir, then rename).

    Chunks: one init time, all lead times, all members and levels, full fields."""
    from pipeline.files import clean_stale, replace_into, temp_beside
    from pipeline.weather.store import consolidate

    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError("output already exists; choose another path or pass --overwrite", path=out)
    clean_stale(out)
    tmp = temp_beside(out)
    try:
        for k, part in enumerate([parts] if isinstance(parts, xr.Dataset) else parts):
            chunks = {d: -1 for d in part.dims}
            chunks["init_time"] = 1
            mode = {"mode": "w-"} if k == 0 else {"append_dim": "init_time"}
            part.chunk(chunks).to_zarr(tmp, zarr_format=3, consolidated=False, **mode)
        consolidate(tmp)
        replace_into(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
