"""Exponential moving average of parameters: ``ema ← decay·ema + (1 - decay)·θ`` after every step."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    """EMA copies of a module's floating-point parameters and buffers (buffers are copied as they are)."""

    def __init__(self, module: nn.Module, *, decay: float = 0.999) -> None:
        self.decay = float(decay)
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in module.state_dict().items()}
        live = module.state_dict(keep_vars=True)
        self._float = [(self.shadow[k], live[k]) for k in self.shadow if live[k].dtype.is_floating_point]
        self._other = [(self.shadow[k], live[k]) for k in self.shadow if not live[k].dtype.is_floating_point]

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """One EMA step (``module`` must be the module given at construction)."""
        if self._float:
            shadows = [s for s, _ in self._float]
            torch._foreach_lerp_(shadows, [v.detach() for _, v in self._float], 1.0 - self.decay)
        for shadow, value in self._other:
            shadow.copy_(value)

    def state_dict(self) -> dict[str, Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for key, value in state.items():
            self.shadow[key].copy_(value)

    def copy_to(self, module: nn.Module) -> None:
        """Load the EMA weights into ``module``."""
        module.load_state_dict(self.shadow)
