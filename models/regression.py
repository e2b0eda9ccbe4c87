"""A deterministic regression objective with the :class:`~models.objectives.Objective` interface.

The network is called once as ``net(zeros, t=1, condition)`` and trained with the (weighted) mean squared
error to the data ``x1``: the deterministic baseline that shares a probabilistic model's network, data and
training loop. Its "sample" is that single prediction (one network call, no noise).
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.guidance import Condition, call_net
from models.objectives import LossOutput, Network, Prediction, weighted_square_loss
from models.paths import LinearPath


class _ConstantTime:
    """Always t = 1: the regression network ignores the flow time."""

    def __call__(self, n: int, *, path=None, generator=None, device="cpu") -> Tensor:  # type: ignore[no-untyped-def]
        return torch.ones(n, device=device)


class RegressionObjective:
    """Weighted MSE of ``net(0, 1, condition)`` to ``x1``; ``predict`` returns that output as ``x1``."""

    name = "mse"
    prediction = "mse"

    def __init__(self) -> None:
        self.path = LinearPath()
        self.time_sampler = _ConstantTime()

    def predict(self, net: Network, x: Tensor, t: Tensor, condition: Condition = None, *, guidance=None) -> Prediction:  # type: ignore[no-untyped-def]
        out = net(torch.zeros_like(x), torch.ones(x.shape[0], dtype=x.dtype, device=x.device), condition)
        zero = torch.zeros_like(out)
        return Prediction(x1=out, x0=zero, velocity=zero, output=out)

    def loss(self, net: Network, x1: Tensor, condition: Condition = None, *, weight: Tensor | None = None,
             mask: Tensor | None = None, t: Tensor | None = None, noise: Tensor | None = None,
             drop: Tensor | None = None, generator: torch.Generator | None = None) -> LossOutput:
        ones = torch.ones(x1.shape[0], dtype=x1.dtype, device=x1.device)
        out = call_net(net, torch.zeros_like(x1), ones, condition, drop)
        return weighted_square_loss(out, x1, weight=weight, mask=mask, t=ones)
