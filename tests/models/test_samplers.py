"""Samplers share one signature, count network calls, keep intermediates; CFG batches cond + uncond."""

from __future__ import annotations

import inspect

import pytest
import torch

from models.guidance import null_condition
from models.networks import MLPDenoiser
from models.objectives import Objective, Prediction, make_objective
from models.samplers import CALLS_PER_STEP, SAMPLERS, Denoiser, make_sampler, sample, time_grid

pytestmark = pytest.mark.usefixtures("single_thread")


class CountingNet(torch.nn.Module):
    """Wraps a network and counts its calls and the batch sizes it saw."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.calls: list[int] = []

    def forward(self, x, t, condition=None, *, drop=None):  # type: ignore[no-untyped-def]
        self.calls.append(x.shape[0])
        return self.net(x, t, condition, drop=drop)


def cond_net() -> MLPDenoiser:
    torch.manual_seed(0)
    return MLPDenoiser(2, cond_dim=3, cfg=True, hidden=32, depth=1).eval()


def test_every_sampler_has_the_same_signature() -> None:
    """All registered samplers are called as (model, x, grid, *, generator, keep_intermediates)."""
    signatures = {name: inspect.signature(cls.__call__) for name, cls in SAMPLERS.items()}
    first = next(iter(signatures.values()))
    assert list(first.parameters) == ["self", "model", "x", "grid", "generator", "keep_intermediates"]
    for name, sig in signatures.items():
        assert sig == first, name


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("steps", [1, 3, 7])
def test_nfe_and_intermediates(name: str, steps: int) -> None:
    """NFE = calls per step × steps, equal to the calls the network saw; intermediates are [steps+1, B, ...]."""
    net = CountingNet(cond_net())
    obj = make_objective("fm")
    cond = torch.randn(5, 3)
    with torch.no_grad():
        res = sample(
            Denoiser(net, obj, condition=cond),
            torch.randn(5, 2),
            sampler=name,
            steps=steps,
            keep_intermediates=True,
            generator=torch.Generator().manual_seed(0),
        )
    assert res.nfe == CALLS_PER_STEP[name] * steps == len(net.calls)
    assert res.intermediates is not None and res.intermediates.shape == (steps + 1, 5, 2)
    assert torch.equal(res.intermediates[-1], res.samples)
    assert res.grid[0] == 0 and res.grid[-1] == 1


def test_guidance_scale_one_and_zero_are_conditional_and_unconditional() -> None:
    """w = 1 reproduces the conditional model, w = 0 the unconditional one; both halves in one call."""
    net = CountingNet(cond_net())
    obj = make_objective("fm")
    cond = torch.randn(6, 3)
    x = torch.randn(6, 2)
    with torch.no_grad():
        kw: dict = {"sampler": "heun", "steps": 4}
        guided1 = sample(Denoiser(net, obj, condition=cond, guidance=1.0), x, **kw)
        assert set(net.calls) == {12} and guided1.nfe == 8  # one batched call (2B) per network evaluation
        cond_only = sample(Denoiser(net, obj, condition=cond), x, **kw).samples
        guided0 = sample(Denoiser(net, obj, condition=cond, guidance=0.0), x, **kw).samples
        drop = torch.ones(6, dtype=torch.bool)
        uncond_net = lambda x_, t_, c_: net(x_, t_, null_condition(c_, drop), drop=drop)
        uncond = sample(Denoiser(uncond_net, obj, condition=cond), x, **kw).samples
        guided3 = sample(Denoiser(net, obj, condition=cond, guidance=3.0), x, **kw).samples
    assert torch.allclose(guided1.samples, cond_only, atol=1e-5)
    assert torch.allclose(guided0, uncond, atol=1e-5)
    assert not torch.allclose(guided3, cond_only, atol=1e-3)


def test_null_condition_zeroes_dropped_samples_in_a_nest() -> None:
    """Dropped samples are zeroed in every tensor of a dict/list nest; kept samples are untouched."""
    cond = {"a": torch.ones(3, 2), "b": [torch.full((3, 4, 4), 2.0)]}
    drop = torch.tensor([True, False, True])
    out = null_condition(cond, drop)
    assert torch.equal(out["a"][:, 0], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.equal(out["b"][0][1], torch.full((4, 4), 2.0)) and float(out["b"][0][0].abs().sum()) == 0


@pytest.mark.parametrize("path", ["linear", "cosine", "edm"])
@pytest.mark.parametrize("kind", ["auto", "uniform", "karras"])
def test_time_grids_increase_and_end_at_one(path: str, kind: str) -> None:
    """steps + 1 strictly increasing times in [0, 1], the last one 1."""
    obj = make_objective("fm" if path == "linear" else f"v-{path}")
    grid = time_grid(obj.path, 9, kind=kind)
    assert grid.shape == (10,) and float(grid[-1]) == 1.0 and float(grid[0]) >= 0.0
    assert bool((grid[1:] > grid[:-1]).all())


def test_auto_grid_is_uniform_for_flow_matching_and_karras_otherwise() -> None:
    """``auto`` picks each path's customary grid: uniform in t on the linear path, EDM ρ-spacing from σ 20 else."""
    fm, vp = make_objective("fm"), make_objective("eps-cosine")
    assert torch.equal(time_grid(fm.path, 6, kind="auto"), time_grid(fm.path, 6, kind="uniform"))
    assert torch.equal(time_grid(vp.path, 6, kind="auto"), time_grid(vp.path, 6, kind="karras", sigma_max=20.0))
    assert float(vp.path.sigma(time_grid(vp.path, 6, kind="auto")[:1])) == pytest.approx(20.0)


def test_unknown_sampler_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler("rk45")


def test_ensemble_members_are_independent_of_batch_composition() -> None:
    """Member i's trajectory (deterministic sampler) does not depend on the other members in the batch."""
    net, obj = cond_net(), make_objective("fm")
    x = torch.randn(4, 2)
    cond = torch.randn(4, 3)
    with torch.no_grad():
        full = sample(Denoiser(net, obj, condition=cond), x, steps=5).samples
        one = sample(Denoiser(net, obj, condition=cond[2:3]), x[2:3], steps=5).samples
    assert torch.allclose(full[2:3], one, atol=1e-6)


class EagerObjective(Objective):
    """The conversion as it was: every call solves for x1, x0 and takes the velocity as da·x1 + db·x0."""

    def predict_from_output(self, output, x, t):  # type: ignore[no-untyped-def]
        x1, x0, velocity = self.solve(output, x, t)
        return Prediction(x1=x1, x0=x0, velocity=velocity, output=output)


def eager(name: str) -> EagerObjective:
    obj = make_objective(name)
    return EagerObjective(path=obj.path, prediction=obj.prediction, time_sampler=obj.time_sampler)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("objective", ["fm", "velocity-cosine", "eps-cosine", "edm"])
def test_lazy_predictions_sample_what_the_eager_conversion_did(name: str, objective: str) -> None:
    """Velocity prediction uses the output as the velocity (was da·x1 + db·x0 of the solved pair: equal up
    to rounding); every other prediction is bit-identical to the eager conversion."""
    net, noise = cond_net(), torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    cond = torch.randn(200, 3, generator=torch.Generator().manual_seed(2))
    draws = []
    for obj in (make_objective(objective), eager(objective)):
        with torch.no_grad():
            draws.append(sample(Denoiser(net, obj, condition=cond), noise, sampler=name, steps=6,
                                generator=torch.Generator().manual_seed(3)).samples)
    if objective.startswith(("fm", "velocity")):
        torch.testing.assert_close(draws[0], draws[1], rtol=1e-5, atol=1e-6)
    else:
        assert torch.equal(draws[0], draws[1])


def test_a_velocity_only_sampler_never_solves_for_x1_and_x0(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Euler on flow matching reads only velocities: no solve; DPM++(2S) reads x1: one solve per call."""
    solves: list[int] = []
    original = Objective.solve
    monkeypatch.setattr(Objective, "solve", lambda self, *a: solves.append(1) or original(self, *a))
    net, obj = cond_net(), make_objective("fm")
    with torch.no_grad():
        sample(Denoiser(net, obj, condition=torch.randn(4, 3)), torch.randn(4, 2), sampler="euler", steps=5)
        assert not solves
        out = sample(Denoiser(net, obj, condition=torch.randn(4, 3)), torch.randn(4, 2), sampler="dpmpp_2s", steps=3)
    assert len(solves) == out.nfe == 6


def test_a_prediction_needs_its_fields_or_a_solver() -> None:
    with pytest.raises(ValueError, match="solve"):
        Prediction(output=torch.zeros(1), velocity=torch.zeros(1))
