"""The data-source abstraction of the training loop.

A source is a pure function of the step: ``source.batch(step, rank=r, world_size=w)`` returns rank
``r``'s ``1/w`` slice of the global batch of that step. Being indexed by step makes resume exact (no
iterator state to save) and DDP equal to single-process training at the same global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from models.guidance import Condition, map_condition
from models.randomness import Stream, Streams


@dataclass(frozen=True)
class Batch:
    """``x1`` data ``[B, ...]``, an optional condition nest, optional per-element ``weight`` and ``mask``
    broadcastable to ``x1``."""

    x1: Tensor
    condition: Condition = None
    weight: Tensor | None = None
    mask: Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        move = lambda v: v.to(device, non_blocking=True)
        return Batch(
            x1=move(self.x1),
            condition=map_condition(move, self.condition),
            weight=None if self.weight is None else move(self.weight),
            mask=None if self.mask is None else move(self.mask),
        )


class BatchSource(Protocol):
    """Anything with ``batch(step, *, rank, world_size) -> Batch``."""

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> Batch: ...


class TensorSource:
    """Random minibatches (with replacement) from in-memory tensors, drawn from the ``data`` stream of
    ``seed`` at ``step`` (:mod:`models.randomness`).

    ``condition`` is a nest of tensors with the same first dimension as ``x1``. ``smoothing`` > 0 adds
    ``smoothing · ε``, ``ε ~ N(0, I)`` from the ``smoothing`` stream, to every drawn example: the model then learns
    the data convolved with a Gaussian kernel of that bandwidth (a kernel density estimate) rather than the
    empirical distribution, which a long training on few examples would otherwise reproduce frame by frame.
    ``probabilities`` (one per example, summing to 1; default uniform) draws examples unequally: drawn by their
    condition, it spends more of the training on rare conditions without changing the conditional distribution
    the model learns (that depends only on the examples that share a condition). ``condition_noise`` = σ > 0 adds
    ``σ · ε`` (the ``condition_noise`` stream) to every floating-point condition drawn, so the model learns
    ``p(x1 | c + σε)``: conditioning augmentation (Ho et al. 2022, cascaded diffusion), which keeps a rollout that
    feeds its own outputs back as conditions from meeting conditions it never saw in training.
    """

    def __init__(
        self,
        x1: Tensor,
        *,
        batch_size: int,
        condition: Condition = None,
        weight: Tensor | None = None,
        seed: int = 0,
        smoothing: float = 0.0,
        probabilities: Tensor | None = None,
        condition_noise: float = 0.0,
    ) -> None:
        self.x1, self.condition, self.weight = x1, condition, weight
        if condition_noise < 0:
            raise ValueError(f"condition_noise must be ≥ 0, not {condition_noise}")
        self.condition_noise = float(condition_noise)
        self.batch_size, self.seed, self.smoothing = batch_size, seed, float(smoothing)
        if probabilities is not None and probabilities.shape != (x1.shape[0],):
            raise ValueError(f"probabilities must have one entry per example ({x1.shape[0]}), "
                             f"not {tuple(probabilities.shape)}")
        self.probabilities = probabilities

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> Batch:
        gen = Streams(self.seed).generator(Stream.DATA, step)
        if self.probabilities is None:
            idx = torch.randint(0, self.x1.shape[0], (self.batch_size,), generator=gen)
        else:
            idx = torch.multinomial(self.probabilities, self.batch_size, replacement=True, generator=gen)
        per = self.batch_size // world_size
        part = slice(rank * per, (rank + 1) * per)
        x1 = self.x1[idx[part]]
        if self.smoothing > 0:
            kernel = Streams(self.seed).generator(Stream.SMOOTHING, step)
            x1 = x1 + self.smoothing * torch.randn((self.batch_size, *self.x1.shape[1:]), generator=kernel)[part]
        idx = idx[part]
        condition = map_condition(lambda v: v[idx], self.condition)
        if self.condition_noise > 0 and condition is not None:
            # drawn for the whole batch and sliced, as the kernel above: every rank count gives the same batch
            noise = Streams(self.seed).generator(Stream.CONDITION_NOISE, step)
            condition = map_condition(lambda v: v + self.condition_noise * torch.randn(
                (self.batch_size, *v.shape[1:]), generator=noise, dtype=v.dtype)[part]
                if v.is_floating_point() else v, condition)
        return Batch(x1=x1, condition=condition, weight=self.weight)
