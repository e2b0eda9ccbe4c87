"""Conditions as nests of tensors, the null condition, and classifier-free guidance (CFG).

A condition is ``None``, a tensor ``[B, ...]``, or a dict / list / tuple nesting such tensors; the batch
dimension is the first of every tensor.

**Null-condition convention (CFG).** A dropped condition is represented by *zeroing* the dropped
samples' entries in every tensor of the nest *and* passing the boolean mask ``drop`` (``[B]``, True =
unconditional) to the network as a keyword: ``net(x, t, condition, drop=drop)``. The network is called
without the keyword when no CFG is in play, so a plain network needs only ``net(x, t, condition)``;
a CFG-capable network accepts ``drop: Tensor | None = None`` (e.g. as an extra input feature).

**Guidance.** With scale ``w`` the guided output is ``out_u + w·(out_c - out_u)`` (w = 1 conditional,
w = 0 unconditional). Conditional and unconditional halves run in ONE batched network call. Because
every objective's conversion to x1_hat / noise / velocity is affine in the network output with the same
coefficients, guiding the raw output equals guiding any of those predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

Condition = Any  # None | Tensor | Mapping[str, Condition] | Sequence[Condition]
NamedCondition = Mapping[str, Tensor | None] | None  # the named condition fields a network reads


def map_condition(fn: Callable[[Tensor], Tensor], condition: Condition) -> Condition:
    """Apply ``fn`` to every tensor of a nest, keeping its structure."""
    if condition is None:
        return None
    if isinstance(condition, Tensor):
        return fn(condition)
    if isinstance(condition, dict):
        return {k: map_condition(fn, v) for k, v in condition.items()}
    if isinstance(condition, (list, tuple)):
        return type(condition)(map_condition(fn, v) for v in condition)
    raise TypeError(f"a condition must be a tensor or a dict/list/tuple of tensors, got {type(condition)}")


def zip_condition(fn: Callable[[Tensor, Tensor], Tensor], first: Condition, second: Condition) -> Condition:
    """Combine two nests of the same structure tensor by tensor."""
    if first is None:
        return None
    if isinstance(first, Tensor):
        return fn(first, second)
    if isinstance(first, dict):
        return {k: zip_condition(fn, v, second[k]) for k, v in first.items()}
    return type(first)(zip_condition(fn, a, b) for a, b in zip(first, second, strict=True))


def null_condition(condition: Condition, drop: Tensor) -> Condition:
    """Zero the entries of samples where ``drop`` ([B] bool) is True, in every tensor of the nest."""

    def zero(v: Tensor) -> Tensor:
        keep = (~drop).to(v.dtype).reshape(-1, *([1] * (v.dim() - 1)))
        return v * keep

    return map_condition(zero, condition)


def sample_drop_mask(
    batch_size: int, probability: float, *, generator: torch.Generator | None = None, device: Any = "cpu"
) -> Tensor:
    """Boolean ``[B]`` mask, True with ``probability`` (condition dropout for CFG training)."""
    return torch.rand(batch_size, generator=generator, device=device) < probability


def call_net(
    net: Callable[..., Tensor], x: Tensor, t: Tensor, condition: Condition, drop: Tensor | None
) -> Tensor:
    """Call ``net`` by the convention above (zeroed condition + ``drop=`` keyword only when given)."""
    if drop is None:
        return net(x, t, condition)
    return net(x, t, null_condition(condition, drop), drop=drop)


def guided_call(
    net: Callable[..., Tensor], x: Tensor, t: Tensor, condition: Condition, scale: float
) -> Tensor:
    """One batched call on ``[conditional; unconditional]`` and ``out_u + scale·(out_c - out_u)``."""
    batch = x.shape[0]
    x2 = torch.cat([x, x])
    t2 = torch.cat([t, t])
    cond2 = map_condition(lambda v: torch.cat([v, v]), condition)
    drop = torch.cat(
        [
            torch.zeros(batch, dtype=torch.bool, device=x.device),
            torch.ones(batch, dtype=torch.bool, device=x.device),
        ]
    )
    out = call_net(net, x2, t2, cond2, drop)
    out_c, out_u = out[:batch], out[batch:]
    return out_u + scale * (out_c - out_u)
