"""``velocast train protein --task ensemble|forecast``.

- ``ensemble``: flow matching of standardised features ``z`` — internal coordinates by default, or
  aligned Cartesian coordinates (see :mod:`pipeline.protein.modeling.data`): ``p(z)``.
- ``forecast``: conditional flow matching of ``z(t+τ)`` given ``z(t)`` (time-lagged, as ITO / Timewarp),
  rolled out autoregressively into trajectories. ``τ = lag_ps``.

The network: :mod:`pipeline.protein.modeling.model`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from models.objectives import objective_json
from models.training import TensorSource, TrainConfig, TrainResult, train
from pipeline.config import StrictModel
from pipeline.errors import UserError
from pipeline.files import check_writable, training_directory
from pipeline.protein.modeling.data import (
    BondModel,
    Featuriser,
    PrincipalModes,
    Representation,
    fit_featuriser,
    lagged_pairs,
    resolve_bond_model,
    resolve_representation,
    trajectory_bounds,
)
from pipeline.protein.modeling.model import ProteinNetworkConfig, Task, build_network
from pipeline.protein.store import open_structure_store
from pipeline.protein.topology import topology_to_dict

log = logging.getLogger(__name__)

FORECAST_CONDITION_NOISE = 0.3
"""Default σ (feature units) of the conditioning augmentation of forecast models. Measured by
tests/benchmarks/bench_protein_kinetics.py on alanine dipeptide (2 minutes of training, balanced pairs): the αL
lifetime t₁ came out 44.8, 34.1 ps (and 53.7, 51.0, 125 in an earlier trial) against the MD's 46.8 ps, and
11.4 – 34.1 ps without it over seven trainings; t₂ and the Ramachandran JS of the rollouts were unchanged."""


class ProteinTrainConfig(StrictModel):
    """Everything ``velocast train protein`` needs (YAML-loadable; flags override)."""

    data: str = Field(
        description="structure store (Zarr) from `velocast ingest protein` / `simulate peptide`"
    )
    task: Task = "ensemble"
    representation: Representation = Field(
        "auto", description="auto (internal up to 10 residues with one bond graph, else modes), internal (bonds, "
                            "angles, dihedrals), modes (whitened principal modes of the aligned frames, chain "
                            "projected) or cartesian (per-atom standardised aligned coordinates)"
    )
    bonds: BondModel | None = Field(
        None, description="internal only: fixed (the default: each bond held at its mean training length; the model "
                          "learns angles and dihedrals) or learned (bond lengths are features too)")
    smoothing: float | Literal["auto"] = Field(
        "auto", description="bandwidth (in feature standard deviations) of the Gaussian kernel added to every "
                            "training example; auto: 0 for internal coordinates, else the training frames' own "
                            "nearest-neighbour RMSD over their RMS fluctuation (see smoothing_bandwidth)")
    lag_ps: float = Field(10.0, description="forecast lag τ in ps (a multiple of the store's frame spacing)")
    condition_balance: float = Field(
        1.0, ge=0.0, le=1.0, description="forecast: draw training pairs with probability ∝ n^-balance, n the pairs "
        "whose condition falls in the same one of 64 k-means clusters of the slowest TICA components (0: uniform; "
        "1: every cluster equally); "
        "rare long-lived states get their share of training, the conditional distribution is unchanged; "
        "uniform below 1,280 pairs)")
    condition_noise: float | None = Field(
        None, ge=0.0, description="forecast: standard deviation (in feature units) of Gaussian noise added to every "
        "training condition (conditioning augmentation); the model learns x(t+τ) given a blurred x(t), which a "
        f"rollout feeding its own outputs back meets too; default {FORECAST_CONDITION_NOISE} for --task forecast "
        "(the αL lifetime of alanine dipeptide within 30 % of the MD's in 4 of 5 trainings, against 1 of 7 "
        "without), 0 for an ensemble")
    network: ProteinNetworkConfig = ProteinNetworkConfig()
    train: TrainConfig = Field(TrainConfig(steps=6000, batch_size=512, lr=1e-3, warmup_steps=200, ema_decay=0.999,
                                           log_every=100, checkpoint_every=1000),
                               description="the training loop; train.objective is any core objective preset (fm)")

    @model_validator(mode="after")
    def _fixed_bonds_need_internal(self) -> ProteinTrainConfig:
        resolve_bond_model(self.representation, self.bonds)
        return self

    @model_validator(mode="after")
    def _condition_noise_needs_conditions(self) -> ProteinTrainConfig:
        if self.condition_noise and self.task != "forecast":
            raise ValueError("condition_noise blurs the conditions of --task forecast; an ensemble model has none")
        return self

    @property
    def condition_sigma(self) -> float:
        """The condition noise σ this training uses (``condition_noise``, or its default for the task)."""
        if self.condition_noise is not None:
            return self.condition_noise
        return FORECAST_CONDITION_NOISE if self.task == "forecast" else 0.0


def smoothing_bandwidth(frames: np.ndarray, featuriser: Featuriser) -> float:
    """``auto`` smoothing of whitened Cartesian features: the bandwidth ``h`` at which the kernel moves a structure
    by twice the training frames' own median nearest-neighbour RMSD, ``h = 2 RMSD_nn / sqrt(Σ_k σ_k² / N)``,
    clipped to [0.05, 0.5]. Finer than the frame spacing the frames carry no information, and a model resolving
    it reproduces the frames instead of the ensemble; at twice the spacing a drawn structure is new (further from
    every frame than neighbouring frames are from each other), while the ensemble's covariance grows by only
    ``1 + h²`` (≤ 25 %). 0 for other featurisers."""
    if not isinstance(featuriser, PrincipalModes):
        return 0.0
    from pipeline.protein.fold import MAX_COMPARISON_FRAMES, nearest_rmsd
    from pipeline.protein.geometry import even_subsample

    subset = frames[even_subsample(len(frames), MAX_COMPARISON_FRAMES)]
    own = float(np.median(nearest_rmsd(subset, subset, leave_self_out=True)))
    fluctuation = float(np.sqrt(np.sum(featuriser.scale ** 2) / frames.shape[1]))
    return float(np.clip(2.0 * own / max(fluctuation, 1e-9), 0.05, 0.5))


def lag_frames(lag_ps: float, time_step_ps: float | None) -> int:
    """The lag in frames; the store must know its frame spacing and the lag must be a multiple of it."""
    if time_step_ps is None:
        raise UserError(
            "the store does not record its frame spacing (time_step_ps); a forecast model needs it"
        )
    frames = lag_ps / time_step_ps
    if frames < 1 or abs(frames - round(frames)) > 1e-6:
        raise UserError(f"lag {lag_ps} ps is not a positive multiple of the frame spacing {time_step_ps} ps")
    return int(round(frames))


BALANCE_CLUSTERS = 64
BALANCE_TICS = 4
BALANCE_MIN_PAIRS = 20 * BALANCE_CLUSTERS


def balanced_probabilities(z: np.ndarray, bounds: list[tuple[int, int]], first: np.ndarray, *, lag: int,
                           balance: float, seed: int = 0) -> np.ndarray | None:
    """Probabilities ∝ n_c^-balance of the pairs whose conditions are the frames ``first`` of the feature series
    ``z`` (trajectories ``bounds``), n_c the size of the pair's cluster: k-means (scikit-learn,
    :data:`BALANCE_CLUSTERS` clusters) on the :data:`BALANCE_TICS` slowest TICA components (deeptime, at the model's
    lag, of all the features: a variance-ordered reduction first would drop the slow directions), the coordinates in
    which rare long-lived states stand apart (the first step of every MSM pipeline). None (uniform) below
    :data:`BALANCE_MIN_PAIRS` pairs, too few for the clusters to mean anything."""
    from deeptime.decomposition import TICA
    from sklearn.cluster import MiniBatchKMeans

    if balance <= 0 or len(first) < BALANCE_MIN_PAIRS:
        return None
    x = np.asarray(z, dtype=np.float64)
    series = [x[a:b] for a, b in bounds if b - a > lag]
    tica = TICA(lagtime=lag, dim=min(BALANCE_TICS, x.shape[1])).fit(series).fetch_model()
    slow = tica.transform(x[first])
    labels = MiniBatchKMeans(n_clusters=BALANCE_CLUSTERS, random_state=seed, n_init=3,
                             batch_size=4096).fit_predict(slow)
    p = np.bincount(labels, minlength=BALANCE_CLUSTERS)[labels].astype(np.float64) ** -balance
    return p / p.sum()


def train_protein(config: ProteinTrainConfig, *, out: str | Path, progress: bool = True,
                  on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train (or resume) a conformation model into run directory ``out`` (``on_step(step)`` after every step)."""
    check_writable(out)  # before any work: a run that cannot be saved never starts
    store = open_structure_store(config.data)
    if len(store.coordinates.shape) != 3:
        raise UserError("training needs an MD store with dims (frame, atom, xyz)", path=config.data)
    frames = store.frames()
    representation = resolve_representation(config.representation, store.topology)
    if config.bonds == "fixed" and representation != "internal":
        raise UserError(f"--bonds fixed needs internal coordinates, and this {store.topology.n_residues}-residue "
                        f"store takes {representation}; drop --bonds or give --representation internal")
    bonds = resolve_bond_model(representation, config.bonds)
    try:
        featuriser = fit_featuriser(representation, frames, store.topology, bonds=bonds)
    except ValueError as exc:
        raise UserError(f"cannot build {representation} coordinates: {exc}; atom sets without one connected "
                        "bond graph (e.g. Cα only) need --representation modes (or auto)", path=config.data) from exc
    z = torch.from_numpy(featuriser.encode(frames))
    dim = z.shape[1]
    smoothing = smoothing_bandwidth(frames, featuriser) if config.smoothing == "auto" else float(config.smoothing)
    metadata = {
        "domain": "protein",
        "task": config.task,
        "objective": objective_json(config.train.objective),
        "network": config.network.model_dump(mode="json"),
        "representation": representation,
        "bonds": bonds,
        "featuriser": featuriser.to_json(),
        "topology": topology_to_dict(store.topology),
        "data": str(config.data),
        "n_training_frames": len(frames),
        "smoothing": smoothing,
        "time_step_ps": store.time_step_ps,
    }
    condition = None
    if config.task == "forecast":
        lag = lag_frames(config.lag_ps, store.time_step_ps)
        first, second = lagged_pairs(trajectory_bounds(store), lag)
        z_all = z.numpy()
        condition, z = z[first], z[second]
        metadata |= {"lag_ps": config.lag_ps, "lag_frames": lag}
    log.info("training the %s model on %d examples of %d %s coordinates (smoothing %.3g)", config.task, len(z), dim,
             representation, smoothing)
    torch.manual_seed(config.train.seed)
    net = build_network(config.network, dim=dim, task=config.task)
    probabilities = None
    if condition is not None:
        balanced = balanced_probabilities(z_all, trajectory_bounds(store), first, lag=lag,
                                          balance=config.condition_balance, seed=config.train.seed)
        probabilities = None if balanced is None else torch.from_numpy(balanced)
        metadata["condition_balance"] = 0.0 if balanced is None else config.condition_balance
        metadata["condition_noise"] = config.condition_sigma
    source = TensorSource(z, batch_size=config.train.batch_size, condition=condition, seed=config.train.seed,
                          smoothing=smoothing, probabilities=probabilities,
                          condition_noise=config.condition_sigma)  # 0 unless forecast (the validator)
    with training_directory(out, config_json=config.model_dump_json(indent=1)):
        return train(net=net, data=source, config=config.train, run_dir=out, progress=progress, extra=metadata,
                     on_step=on_step)
