"""Independent named random streams from one seed.

Every consumer of randomness draws from its own stream: a name (``"data"``, ``"time"``, ``"noise"``, …)
and the integers that index its draws (a training step, a batch number). :func:`stream_seed` hashes the
key ``(seed, name, *index)`` with BLAKE2b to a 64-bit generator seed, so no two consumers of one seed
share random numbers whatever the arithmetic of their indices, and a draw is a pure function of its key:
a run resumed at step ``k`` re-creates the generators of step ``k`` exactly.

torch's CPU generator (MT19937) keeps only the low 32 bits of a seed (CUDA's Philox keeps all 64), so two
different keys share a CPU generator with probability 2⁻³²: among ``N`` draws about ``N²/2³³`` pairs
coincide (one pair by ~31,000 steps of a loop drawing 3 streams a step). A coincidence repeats the random
numbers of one draw in one other, unrelated draw; it does not correlate two streams.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum

import torch


class Stream(StrEnum):
    """The core's consumers of randomness. Domains may name their own streams with any other string."""

    DATA = "data"
    """Training batches of a data source (which examples, and a synthetic source's draws)."""
    TIME = "time"
    """The training times ``t`` of a step."""
    NOISE = "noise"
    """The noise ``x0`` of a step."""
    COND_DROP = "cond_drop"
    """The classifier-free-guidance condition-drop mask of a step."""
    NETWORK = "network"
    """torch's global generator during training: dropout and any other draw inside the network."""
    PAIRS = "pairs"
    """Which teacher couplings a reflow step trains on."""
    PAIR_NOISE = "pair_noise"
    """The start noise of the teacher's couplings."""
    SMOOTHING = "smoothing"
    """The Gaussian kernel noise a data source adds to its examples (``TensorSource(smoothing=…)``)."""
    CONDITION_NOISE = "condition_noise"
    """The Gaussian noise a data source adds to its conditions (``TensorSource(condition_noise=…)``)."""
    SAMPLER = "sampler"
    """The noise a stochastic sampler adds along the way (``churn``)."""


def stream_seed(seed: int, stream: str, *index: int) -> int:
    """The 64-bit generator seed of stream ``stream`` at ``index`` under ``seed`` (BLAKE2b of the key)."""
    key = json.dumps([int(seed), str(stream), *(int(i) for i in index)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


@dataclass(frozen=True)
class Streams:
    """The named streams of one seed: ``Streams(seed).generator(Stream.NOISE, step, device=device)``."""

    seed: int

    def seed_of(self, stream: str, *index: int) -> int:
        """The generator seed of ``stream`` at ``index`` (see :func:`stream_seed`)."""
        return stream_seed(self.seed, stream, *index)

    def generator(self, stream: str, *index: int, device: torch.device | str | None = None) -> torch.Generator:
        """A fresh generator on ``device`` (default CPU) seeded for ``stream`` at ``index``."""
        gen = torch.Generator(device=device) if device is not None else torch.Generator()
        return gen.manual_seed(self.seed_of(stream, *index))

    def seed_global(self, stream: str, *index: int) -> None:
        """Seed torch's global generators (CPU and CUDA) for ``stream`` at ``index``."""
        torch.manual_seed(self.seed_of(stream, *index))


__all__ = ["Stream", "Streams", "stream_seed"]
