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

import torch
from pydantic import Field, model_validator

from models.objectives import objective_json
from models.training import TensorSource, TrainConfig, TrainResult, train
from pipeline.config import StrictModel
from pipeline.errors import UserError
from pipeline.files import check_writable, training_directory
from pipeline.protein.modeling.data import (
    BondModel,
    Representation,
    fit_featuriser,
    lagged_pairs,
    resolve_bond_model,
    trajectory_bounds,
)
from pipeline.protein.modeling.model import ProteinNetworkConfig, Task, build_network
from pipeline.protein.store import open_structure_store
from pipeline.protein.topology import topology_to_dict

log = logging.getLogger(__name__)

class ProteinTrainConfig(StrictModel):
    """Everything ``velocast train protein`` needs (YAML-loadable; flags override)."""

    data: str = Field(
        description="structure store (Zarr) from `velocast ingest protein` / `simulate peptide`"
    )
    task: Task = "ensemble"
    representation: Representation = Field(
        "internal", description="internal (bonds, angles, dihedrals; default) or cartesian (aligned coordinates)"
    )
    bonds: BondModel | None = Field(
        None, description="internal only: fixed (the default: each bond held at its mean training length; the model "
                          "learns angles and dihedrals) or learned (bond lengths are features too)")
    lag_ps: float = Field(10.0, description="forecast lag τ in ps (a multiple of the store's frame spacing)")
    network: ProteinNetworkConfig = ProteinNetworkConfig()
    train: TrainConfig = Field(TrainConfig(steps=6000, batch_size=512, lr=1e-3, warmup_steps=200, ema_decay=0.999,
                                           log_every=100, checkpoint_every=1000),
                               description="the training loop; train.objective is any core objective preset (fm)")

    @model_validator(mode="after")
    def _fixed_bonds_need_internal(self) -> ProteinTrainConfig:
        resolve_bond_model(self.representation, self.bonds)
        return self


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


def train_protein(config: ProteinTrainConfig, *, out: str | Path, progress: bool = True,
                  on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train (or resume) a conformation model into run directory ``out`` (``on_step(step)`` after every step)."""
    check_writable(out)  # before any work: a run that cannot be saved never starts
    store = open_structure_store(config.data)
    if len(store.coordinates.shape) != 3:
        raise UserError("training needs an MD store with dims (frame, atom, xyz)", path=config.data)
    frames = store.frames()
    bonds = resolve_bond_model(config.representation, config.bonds)
    try:
        featuriser = fit_featuriser(config.representation, frames, store.topology, bonds=bonds)
    except ValueError as exc:
        raise UserError(f"cannot build {config.representation} coordinates: {exc}; atom sets without one connected "
                        "bond graph (e.g. Cα only) need --representation cartesian", path=config.data) from exc
    z = torch.from_numpy(featuriser.encode(frames))
    dim = z.shape[1]
    metadata = {
        "domain": "protein",
        "task": config.task,
        "objective": objective_json(config.train.objective),
        "network": config.network.model_dump(mode="json"),
        "representation": config.representation,
        "bonds": bonds,
        "featuriser": featuriser.to_json(),
        "topology": topology_to_dict(store.topology),
        "data": str(config.data),
        "n_training_frames": len(frames),
        "time_step_ps": store.time_step_ps,
    }
    condition = None
    if config.task == "forecast":
        lag = lag_frames(config.lag_ps, store.time_step_ps)
        first, second = lagged_pairs(trajectory_bounds(store), lag)
        condition, z = z[first], z[second]
        metadata |= {"lag_ps": config.lag_ps, "lag_frames": lag}
    log.info("training the %s model on %d examples of %d coordinates", config.task, len(z), dim)
    torch.manual_seed(config.train.seed)
    net = build_network(config.network, dim=dim, task=config.task)
    source = TensorSource(z, batch_size=config.train.batch_size, condition=condition, seed=config.train.seed)
    with training_directory(out, config_json=config.model_dump_json(indent=1)):
        return train(net=net, data=source, config=config.train, run_dir=out, progress=progress, extra=metadata,
                     on_step=on_step)
