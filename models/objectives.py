"""Training objectives with one interface, and the conversion of network outputs to predictions.

Convention (see :mod:`models`): ``x_t = a(t)·x1 + b(t)·x0``, ``x0 ~ N(0, I)`` noise, ``x1`` data, t: 0 → 1.

Every objective regresses the network output ``F`` onto a target that is linear in ``(x1, x0)``,
``F* = c(t)·x1 + d(t)·x0``:

==============  ===========================  ===================================================
prediction      target ``F*``                network input
==============  ===========================  ===================================================
``velocity``    ``da·x1 + db·x0`` (FM on     ``(x_t, t)``
                the linear path: ``x1 - x0``)
``eps``         ``x0``                       ``(x_t, t)``
``x0``          ``x1`` (the *data*; the      ``(x_t, t)``
                name follows the diffusion
                literature's "x0")
``v``           ``a·x0 - b·x1`` (Salimans    ``(x_t, t)``
                & Ho 2022)
``edm``         ``(x1 - c_skip·x̃)/c_out``    ``(c_in·x̃, c_noise)`` with ``x̃ = x_t/a`` (VE state),
                                             EDM preconditioning (Karras et al. 2022, Table 1)
==============  ===========================  ===================================================

Given ``x_t`` and ``F`` the pair ``(x1_hat, x0_hat)`` solves ``[a b; c d]·[x1; x0] = [x_t; F]`` and the
ODE velocity is ``da·x1_hat + db·x0_hat``, so every sampler works with every objective. For ``velocity``
that is the output itself, used as is; the pair is solved only when a sampler reads it. ``eps``, ``x0``,
``v`` and ``edm`` need a variance-preserving path (``a, b > 0`` on ``[0, 1]``); ``velocity`` works on any.

Loss: ``Σ w·m·(F - F*)² / Σ m`` over all elements, ``w`` an optional per-element weight broadcastable to
``x1`` (e.g. latitude-area weights with mean 1) and ``m`` an optional 0/1 mask (default all ones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor

from models.guidance import Condition, call_net
from models.paths import Path, PathName, bcast, make_path
from models.timesampling import TimeSampler, TimeSamplingName, make_time_sampler

PredictionType = Literal["velocity", "eps", "x0", "v", "edm"]
Network = Callable[..., Tensor]


class Prediction:
    """What the model says at ``(x_t, t)``: data ``x1``, noise ``x0``, ODE velocity ``dx/dt``, raw ``output``.

    Give all four, or the output, any of the others already known, and ``solve() -> (x1, x0, velocity)``:
    the missing ones are then solved on first access, once. An objective's predictions are built so: a
    sampler that reads only the velocity of a velocity-predicting network (flow matching) never solves.
    """

    __slots__ = ("_solve", "_velocity", "_x0", "_x1", "output")

    def __init__(self, *, output: Tensor, x1: Tensor | None = None, x0: Tensor | None = None,
                 velocity: Tensor | None = None, solve: Callable[[], tuple[Tensor, Tensor, Tensor]] | None = None,
                 ) -> None:
        if solve is None and (x1 is None or x0 is None or velocity is None):
            raise ValueError("a Prediction needs x1, x0 and velocity, or a solve() for the missing ones")
        self.output, self._x1, self._x0, self._velocity, self._solve = output, x1, x0, velocity, solve

    def _fill(self) -> None:
        assert self._solve is not None
        x1, x0, velocity = self._solve()
        self._x1 = x1 if self._x1 is None else self._x1
        self._x0 = x0 if self._x0 is None else self._x0
        self._velocity = velocity if self._velocity is None else self._velocity
        self._solve = None

    @property
    def x1(self) -> Tensor:
        if self._x1 is None:
            self._fill()
        assert self._x1 is not None
        return self._x1

    @property
    def x0(self) -> Tensor:
        if self._x0 is None:
            self._fill()
        assert self._x0 is not None
        return self._x0

    @property
    def velocity(self) -> Tensor:
        if self._velocity is None:
            self._fill()
        assert self._velocity is not None
        return self._velocity


@dataclass(frozen=True)
class LossOutput:
    """Scalar ``loss`` (what backward sees), ``per_sample`` ``[B]`` losses, and the ``t`` used."""

    loss: Tensor
    per_sample: Tensor
    t: Tensor


class Objective:
    """One objective = a path, a prediction type and a training-time distribution of t."""

    def __init__(self, *, path: Path, prediction: PredictionType, time_sampler: TimeSampler) -> None:
        if prediction != "velocity" and not path.variance_preserving:
            raise ValueError(
                f"prediction {prediction!r} needs a variance-preserving path "
                f"(linear_beta, cosine, sigmoid, edm); "
                f"{path.name!r} is singular at its ends — use prediction 'velocity' on it"
            )
        self.path = path
        self.prediction = prediction
        self.time_sampler = time_sampler

    @property
    def name(self) -> str:
        return f"{self.prediction}-{self.path.name}"

    # -- the linear algebra -------------------------------------------------------------------
    def _sigma_data(self) -> float:
        return float(getattr(self.path, "sigma_data", 1.0))

    def target_coefficients(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(c, d)`` with target ``F* = c·x1 + d·x0``."""
        k = self.path.coefficients(t)
        if self.prediction == "velocity":
            return k.da, k.db
        if self.prediction == "eps":
            return torch.zeros_like(t), torch.ones_like(t)
        if self.prediction == "x0":
            return torch.ones_like(t), torch.zeros_like(t)
        if self.prediction == "v":
            return -k.b, k.a
        c_skip, c_out, _, _ = self.edm_preconditioning(t)
        sigma = k.b / k.a
        return (1.0 - c_skip) / c_out, -c_skip * sigma / c_out

    def edm_preconditioning(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``c_skip, c_out, c_in, c_noise`` at ``σ = b/a`` (Karras et al. 2022)."""
        sd = self._sigma_data()
        sigma = self.path.sigma(t)
        denom = sigma * sigma + sd * sd
        return sd * sd / denom, sigma * sd / denom.sqrt(), 1.0 / denom.sqrt(), 0.25 * torch.log(sigma)

    def network_inputs(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """What the network sees: ``(x_t, t)``, or ``(c_in·x_t/a, c_noise)`` under EDM preconditioning."""
        if self.prediction != "edm":
            return x, t
        _, _, c_in, c_noise = self.edm_preconditioning(t)
        a = self.path.coefficients(t).a
        return x * bcast(c_in / a, x), c_noise

    def predict_from_output(self, output: Tensor, x: Tensor, t: Tensor) -> Prediction:
        """Convert a network output at ``(x_t, t)`` (``t`` of shape ``[B]``) to a :class:`Prediction`.

        ``x1``, ``x0`` (and the velocity, unless the output is one) are solved only when read."""
        velocity = output if self.prediction == "velocity" else None
        return Prediction(output=output, velocity=velocity, solve=lambda: self.solve(output, x, t))

    def solve(self, output: Tensor, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(x1_hat, x0_hat, velocity)`` from ``[a b; c d]·[x1; x0] = [x_t; F]`` (see the module doc)."""
        k = self.path.coefficients(t)
        c, d = self.target_coefficients(t)
        det = k.a * d - k.b * c
        a, b, c, d, det, da, db = (bcast(v, x) for v in (k.a, k.b, c, d, det, k.da, k.db))
        x1 = (d * x - b * output) / det
        x0 = (a * output - c * x) / det
        return x1, x0, da * x1 + db * x0

    def predict(
        self,
        net: Network,
        x: Tensor,
        t: Tensor,
        condition: Condition = None,
        *,
        guidance: float | None = None,
    ) -> Prediction:
        """Call the network (optionally with classifier-free guidance) and convert its output."""
        from models.guidance import guided_call

        x_in, t_in = self.network_inputs(x, t)
        if guidance is None:
            out = call_net(net, x_in, t_in, condition, None)
        else:
            out = guided_call(net, x_in, t_in, condition, guidance)
        return self.predict_from_output(out, x, t)

    # -- training ----------------------------------------------------------------------------
    def loss(self, net: Network, x1: Tensor, condition: Condition = None, *, weight: Tensor | None = None,
             mask: Tensor | None = None, t: Tensor | None = None, noise: Tensor | None = None,
             drop: Tensor | None = None, generator: torch.Generator | None = None) -> LossOutput:
        """Regression loss at random (or given) ``t`` and ``noise``; ``drop`` is the CFG drop mask ``[B]``."""
        batch = x1.shape[0]
        if t is None:
            t = self.time_sampler(batch, path=self.path, generator=generator, device=x1.device)
        if noise is None:
            noise = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
        t = t.to(device=x1.device, dtype=x1.dtype)
        xt = self.path.sample_xt(x1, noise, t)
        c, d = self.target_coefficients(t)
        target = bcast(c, x1) * x1 + bcast(d, x1) * noise
        x_in, t_in = self.network_inputs(xt, t)
        out = call_net(net, x_in, t_in, condition, drop)
        return weighted_square_loss(out, target, weight=weight, mask=mask, t=t)


def weighted_square_loss(
    out: Tensor, target: Tensor, *, weight: Tensor | None, mask: Tensor | None, t: Tensor
) -> LossOutput:
    """``Σ w·m·(out − target)² / Σ m`` over all elements (and per sample); ``w``, ``m`` broadcast to ``out``."""
    batch = out.shape[0]
    err = (out.float() - target.float()) ** 2
    w = torch.ones_like(err)
    if weight is not None:
        w = w * weight.to(err.dtype)
    if mask is not None:
        m = torch.broadcast_to(mask.to(err.dtype), err.shape)
        w = w * m
        count = m.reshape(batch, -1).sum(1)
    else:
        count = torch.full((batch,), float(err[0].numel()), device=err.device)
    per_sample_sum = (w * err).reshape(batch, -1).sum(1)
    per_sample = per_sample_sum / count.clamp_min(1.0)
    return LossOutput(loss=per_sample_sum.sum() / count.sum().clamp_min(1.0), per_sample=per_sample, t=t)


# -- configuration / factory ----------------------------------------------------------------------------


class ObjectiveSpec(BaseModel):
    """An objective by configuration: prediction type, path, time sampling (and their options)."""

    model_config = ConfigDict(extra="forbid")

    prediction: PredictionType = "velocity"
    path: PathName = "linear"
    time_sampling: TimeSamplingName | None = (
        None  # None: the prediction's default (see DEFAULT_TIME_SAMPLING)
    )
    path_options: dict[str, float] = {}
    time_sampling_options: dict[str, float] = {}


DEFAULT_TIME_SAMPLING: dict[str, TimeSamplingName] = {
    "velocity": "uniform",
    "eps": "uniform",
    "x0": "uniform",
    "v": "uniform",
    "edm": "edm_lognormal",
}

#: Named presets: ``fm`` and ``{eps,x0,v,velocity}-{linear_beta,cosine,sigmoid,edm}`` plus ``edm``.
PRESETS: dict[str, dict[str, Any]] = {
    "fm": {"prediction": "velocity", "path": "linear"},
    "edm": {"prediction": "edm", "path": "edm"},
}
for _pred in ("eps", "x0", "v", "velocity"):
    for _path in ("linear_beta", "cosine", "sigmoid", "edm"):
        PRESETS[f"{_pred}-{_path}"] = {"prediction": _pred, "path": _path}


def make_objective(spec: ObjectiveSpec | str | dict[str, Any]) -> Objective:
    """Build an :class:`Objective` from a spec, a dict, or a preset name (see :data:`PRESETS`)."""
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown objective {spec!r}; choose one of {sorted(PRESETS)}")
        spec = ObjectiveSpec(**PRESETS[spec])
    elif isinstance(spec, dict):
        spec = ObjectiveSpec(**spec)
    path = make_path(spec.path, **spec.path_options)
    sampling = spec.time_sampling or DEFAULT_TIME_SAMPLING[spec.prediction]
    return Objective(
        path=path,
        prediction=spec.prediction,
        time_sampler=make_time_sampler(sampling, **spec.time_sampling_options),
    )


def objective_json(spec: ObjectiveSpec | str) -> str | dict[str, Any]:
    """The JSON form of an objective as checkpoints record it: a preset's name, or the spec's fields."""
    return spec if isinstance(spec, str) else spec.model_dump(mode="json")


__all__ = [
    "PRESETS",
    "LossOutput",
    "Objective",
    "ObjectiveSpec",
    "Prediction",
    "make_objective",
    "objective_json",
]
