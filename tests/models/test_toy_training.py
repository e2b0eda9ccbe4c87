"""A small MLP trained with each objective learns the 2-D mixture of 8 Gaussians.

Checks on 2000 samples (EMA weights): (1) each mode's weight within 0.05 of 1/8; (2) ≥ 60% of samples
within 3σ of a mode centre (data: 98.9%; a Gaussian with the data's mean and covariance: 27%); (3) the
sliced-Wasserstein distance to 2000 fresh data points is below 3× the mean distance between two fresh
data sets of that size (measured in the test over 4 pairs: ≈ 0.08, so the bound is ≈ 0.25; the
moment-matched Gaussian scores ≈ 0.42, the trained models ≈ 0.12-0.2). Trainings are 500 steps of batch 256
(800 for eps-prediction, the slowest to learn).
"""

from __future__ import annotations

import pytest
import torch

from models.networks import MLPDenoiser
from models.objectives import make_objective
from models.samplers import Denoiser, sample, time_grid
from models.toy import (
    STD,
    EightGaussiansSource,
    eight_centers,
    eight_gaussians,
    mixture_weights,
    sliced_wasserstein,
)
from models.training import TrainConfig, train

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.slow]

N = 2000
SW_FACTOR = 3.0


def sw(x: torch.Tensor, y: torch.Tensor) -> float:
    return sliced_wasserstein(x, y, projections=256, generator=torch.Generator().manual_seed(0))


def near_mode_fraction(x: torch.Tensor) -> float:
    return float((torch.cdist(x.float(), eight_centers()).min(dim=1).values < 3 * STD).float().mean())


def sw_bound() -> float:
    pairs = []
    for k in range(4):
        a, _ = eight_gaussians(N, generator=torch.Generator().manual_seed(100 + 2 * k))
        b, _ = eight_gaussians(N, generator=torch.Generator().manual_seed(101 + 2 * k))
        pairs.append(sw(a, b))
    return SW_FACTOR * sum(pairs) / len(pairs)


def fit(objective: str, *, conditional: bool = False, steps: int = 500):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = MLPDenoiser(2, hidden=64, depth=2, cond_dim=8 if conditional else 0, cfg=conditional)
    cfg = TrainConfig(
        objective=objective,
        steps=steps,
        batch_size=256,
        lr=3e-3,
        warmup_steps=50,
        ema_decay=0.99,
        cond_dropout=0.2 if conditional else 0.0,
        log_every=10**9,
        checkpoint_every=0,
    )
    return train(
        net=net, data=EightGaussiansSource(batch_size=256, seed=7, conditional=conditional), config=cfg
    )


def test_the_checks_reject_a_moment_matched_gaussian() -> None:
    """The three checks discriminate: a Gaussian with the data's mean and covariance fails them."""
    blob = torch.randn(N, 2, generator=torch.Generator().manual_seed(3)) * (2.0 + STD**2) ** 0.5
    ref, _ = eight_gaussians(N, generator=torch.Generator().manual_seed(9))
    assert near_mode_fraction(blob) < 0.6
    assert sw(blob, ref) > sw_bound()


@pytest.mark.parametrize("objective", ["fm", "eps-cosine", "v-cosine", "x0-linear_beta", "edm"])
def test_mlp_learns_the_mixture(objective: str) -> None:
    """Training 500 steps (batch 256) then sampling with Heun, 32 steps, matches the mixture."""
    res = fit(objective, steps=800 if objective.startswith("eps") else 500)
    obj = make_objective(objective)
    # flow matching: uniform grid; diffusion: EDM's grid, σmax = 20 (eps is imprecise at higher noise)
    grid = time_grid(obj.path, 32, kind="auto")
    noise = torch.randn(N, 2, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        x = sample(Denoiser(res.ema_net, obj), noise, sampler="heun", grid=grid).samples
    ref, _ = eight_gaussians(N, generator=torch.Generator().manual_seed(9))
    weights = mixture_weights(x)
    assert float((weights - 0.125).abs().max()) < 0.05, weights
    assert near_mode_fraction(x) > 0.6
    assert sw(x, ref) < sw_bound()


def test_conditional_model_with_guidance_samples_the_requested_mode() -> None:
    """A model trained with condition dropout puts ≥ 90% of samples of mode k near centre k (guidance 2),
    and its unconditional samples (guidance 0) still cover all modes."""
    res = fit("fm", conditional=True)
    obj = make_objective("fm")
    noise = torch.randn(800, 2, generator=torch.Generator().manual_seed(5))
    labels = torch.arange(800) % 8
    cond = torch.nn.functional.one_hot(labels, 8).float()
    with torch.no_grad():
        x = sample(Denoiser(res.ema_net, obj, condition=cond, guidance=2.0), noise, steps=16).samples
        u = sample(Denoiser(res.ema_net, obj, condition=cond, guidance=0.0), noise, steps=16).samples
    nearest = torch.cdist(x, eight_centers()).argmin(dim=1)
    assert float((nearest == labels).float().mean()) > 0.9
    assert float((mixture_weights(u) - 0.125).abs().max()) < 0.06
