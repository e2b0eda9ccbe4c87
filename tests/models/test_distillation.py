"""Reflow distillation (models.distillation) on the conditional 2-D toy: a few-step student beats its
teacher at the same number of network calls, records what it was distilled for, and round-trips
through safetensors + JSON checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from models.distillation import ReflowConfig, reflow_distill, reflow_times, teacher_couplings
from models.networks import MLPDenoiser
from models.objectives import make_objective
from models.randomness import Stream, Streams
from models.samplers import Denoiser, sample
from models.toy import eight_gaussians, mixture_weights, sliced_wasserstein
from models.training import Batch, TrainConfig, load_checkpoint, load_weights, train


class HalfLabelSource:
    """8-Gaussian batches conditioned on ``label mod 2`` (one-hot): each condition is a 4-mode mixture, so
    the conditional target stays multimodal (a model that collapses to the mean is visibly wrong)."""

    def __init__(self, batch_size: int, seed: int = 0) -> None:
        self.batch_size, self.seed = batch_size, seed

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> Batch:
        gen = Streams(self.seed).generator(Stream.DATA, step)
        x, labels = eight_gaussians(self.batch_size, generator=gen)
        return Batch(x1=x, condition=torch.nn.functional.one_hot(labels % 2, 2).float())


N_EVAL = 2000


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for this module (much faster on a shared 2-core machine); restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def toy(one_thread):
    torch.manual_seed(0)
    net = MLPDenoiser(2, cond_dim=2, hidden=64, depth=2)
    cfg = TrainConfig(objective="fm", steps=500, batch_size=256, lr=3e-3, warmup_steps=20, ema_decay=0.99,
                      log_every=10**6, checkpoint_every=0, seed=0)
    teacher = train(net=net, data=HalfLabelSource(256), config=cfg).ema_net
    gen = torch.Generator().manual_seed(123)
    ref, labels = eight_gaussians(N_EVAL, generator=gen)
    cond = torch.nn.functional.one_hot(labels % 2, 2).float()
    noise = torch.randn(N_EVAL, 2, generator=gen)
    config = ReflowConfig(student_steps=1, teacher_sampler="heun", teacher_steps=8, pairs=4096, pair_batch_size=512,
                          steps=300, batch_size=256, lr=1e-3, warmup_steps=10, seed=1)
    couplings = teacher_couplings(teacher, make_objective("fm"), source=HalfLabelSource(512, seed=7), config=config)
    return teacher, ref, cond, noise, config, couplings


@torch.no_grad()
def scores(net, toy, steps: int) -> tuple[float, float]:
    """(sliced Wasserstein to the reference, L1 error of the 8 mixture weights) at ``steps`` Euler calls."""
    _, ref, cond, noise, _, _ = toy
    out = sample(Denoiser(net, make_objective("fm"), condition=cond), noise, sampler="euler", steps=steps)
    assert out.nfe == steps
    sw = sliced_wasserstein(out.samples, ref, generator=torch.Generator().manual_seed(0))
    weight_error = float((mixture_weights(out.samples) - mixture_weights(ref)).abs().sum())
    return sw, weight_error


def test_couplings_are_the_teachers_ode_map(toy) -> None:
    """Each coupling's sample is the teacher's deterministic ODE image of its noise under its condition."""
    teacher, _, _, _, config, couplings = toy
    assert len(couplings) == config.pairs and couplings.nfe == 16
    noise, x1, cond = couplings.take(torch.arange(5))
    again = sample(Denoiser(teacher, make_objective("fm"), condition=cond), noise, sampler="heun", steps=8).samples
    torch.testing.assert_close(again, x1, atol=1e-5, rtol=1e-5)


def test_scaled_noise_couplings_start_from_the_scaled_noise(toy) -> None:
    """With ``noise_scale`` λ (per coordinate here) the teacher starts from λ·z and the coupling keeps λ·z as
    the student's x0, so the pair is still the teacher's ODE image of its stored noise."""
    teacher, _, _, _, config, _ = toy
    small = config.model_copy(update={"pairs": 512})
    scale = torch.tensor([0.5, 2.0])
    couplings = teacher_couplings(teacher, make_objective("fm"), source=HalfLabelSource(512, seed=7), config=small,
                                  noise_scale=scale)
    torch.testing.assert_close(couplings.noise.std(dim=0), scale, atol=0.15, rtol=0.0)
    noise, x1, cond = couplings.take(torch.arange(5))
    again = sample(Denoiser(teacher, make_objective("fm"), condition=cond), noise, sampler="heun", steps=8).samples
    torch.testing.assert_close(again, x1, atol=1e-5, rtol=1e-5)


def test_reflow_times_follow_the_student_grid() -> None:
    """'grid' puts every training time on K-step Euler's grid; 'mixed' half of them; 'uniform' none."""
    gen = torch.Generator().manual_seed(0)
    on_grid = lambda t: ((t * 4) - (t * 4).round()).abs() < 1e-6
    assert on_grid(reflow_times(64, steps=4, mode="grid", generator=gen)).all()
    assert on_grid(reflow_times(64, steps=4, mode="mixed", generator=gen)).sum() >= 32
    assert on_grid(reflow_times(64, steps=4, mode="uniform", generator=gen)).sum() < 4


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_student_beats_teacher_at_the_same_calls(toy, steps, tmp_path) -> None:
    """Measured (500-step teacher, 300-step student, 2000 samples, 1 thread): teacher Euler SW 1.256 / 0.464 /
    0.206 at 1 / 2 / 4 calls, the reflow student 0.099 / 0.085 / 0.079 (mixture-weight L1 error at 1 call:
    teacher 0.136, student 0.031; ~0.04 is the sampling noise of 2000 points). Bound: the student's sliced
    Wasserstein is below 0.5x the teacher's at 1-2 calls and below 0.75x at 4, and at 1 call its
    mixture-weight error is below the teacher's."""
    teacher, _, _, _, config, couplings = toy
    result = reflow_distill(teacher=teacher, teacher_objective=make_objective("fm"), couplings=couplings,
                            config=config.model_copy(update={"student_steps": steps}), run_dir=tmp_path / "student",
                            teacher_objective_name="fm")
    t_sw, t_w = scores(teacher, toy, steps)
    s_sw, s_w = scores(result.student, toy, steps)
    print(f"steps={steps}: teacher SW {t_sw:.3f} weights {t_w:.3f}; student SW {s_sw:.3f} weights {s_w:.3f}")
    assert s_sw < (0.5 if steps <= 2 else 0.75) * t_sw
    if steps == 1:
        assert s_w < t_w
    # The checkpoint is an ordinary fm model that records the sampler and steps it was distilled for.
    ckpt = load_checkpoint(tmp_path / "student")
    assert ckpt.extra["objective"] == "fm" and ckpt.extra["sampler"] == "euler"
    assert ckpt.extra["sampler_steps"] == steps and ckpt.extra["distillation"]["method"] == "reflow"
    json.dumps(ckpt.extra)
    fresh = MLPDenoiser(2, cond_dim=2, hidden=64, depth=2)
    load_weights(tmp_path / "student", fresh)
    assert scores(fresh, toy, steps) == (s_sw, s_w)


def test_a_wrong_student_does_not_pass(toy) -> None:
    """The bound discriminates: a student trained for 0 steps from scratch is far worse than the teacher."""
    teacher, _, _, _, config, couplings = toy
    fresh = MLPDenoiser(2, cond_dim=2, hidden=64, depth=2)
    result = reflow_distill(teacher=teacher, teacher_objective=make_objective("fm"), couplings=couplings,
                            config=config.model_copy(update={"steps": 0, "init_from_teacher": False}), student=fresh)
    assert scores(result.student, toy, 1)[0] > scores(teacher, toy, 1)[0] * 0.5


def test_fair_crps_and_energy_scores_by_hand() -> None:
    """Two members (0, 2) against y = 1: CRPS = mean(|0−1|, |2−1|) − |0−2|/2 = 0; a one-element energy score is
    the CRPS; a 2-D energy score uses the Euclidean norm; fewer than 2 members is refused."""
    from models.distillation import fair_crps_loss, fair_energy_loss

    members = torch.tensor([[[0.0]], [[2.0]]])  # [M=2, B=1, 1]
    assert float(fair_crps_loss(members, torch.tensor([[1.0]]))) == pytest.approx(0.0)
    assert float(fair_crps_loss(members, torch.tensor([[3.0]]))) == pytest.approx(2.0 - 1.0)
    assert float(fair_energy_loss(members, torch.tensor([[3.0]]))) == pytest.approx(1.0, abs=1e-5)
    pair = torch.tensor([[[0.0, 0.0]], [[3.0, 4.0]]])  # ‖x1 − x2‖ = 5
    assert float(fair_energy_loss(pair, torch.tensor([[0.0, 0.0]]))) == pytest.approx(0.5 * 5 - 0.5 * 5, abs=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        fair_crps_loss(members[:1], torch.tensor([[1.0]]))


def test_the_fair_crps_is_lowest_for_the_true_spread() -> None:
    """Members from N(0, σ²) against y ~ N(0, 1): the expected fair CRPS is smallest at σ = 1, even with only 2
    members (the property that lets a 2-member loss train a calibrated generator)."""
    from models.distillation import fair_crps_loss

    gen = torch.Generator().manual_seed(0)
    y = torch.randn(200_000, 1, generator=gen)
    z = torch.randn(2, 200_000, 1, generator=gen)
    crps = {sigma: float(fair_crps_loss(sigma * z, y)) for sigma in (0.6, 0.8, 1.0, 1.25, 1.6)}
    assert min(crps, key=crps.get) == 1.0


@pytest.mark.parametrize("method", ["crps", "energy"])
def test_a_scoring_rule_student_makes_one_call_samples_of_the_data(toy, method, tmp_path) -> None:
    """The crps and energy methods fine-tune the teacher on the data itself (no teacher samples): the one-call
    student beats the teacher's one call, records its method, and samples through the normal Euler path.
    Measured (300 steps, 4 members, 1 thread): teacher SW 1.256 at 1 call; crps student 0.148, energy 0.119
    (the reflow student of the same teacher: 0.099)."""
    teacher, _, _, _, config, _ = toy
    student_config = config.model_copy(update={"method": method, "members": 4, "student_steps": 1,
                                               "batch_size": 128})
    result = reflow_distill(teacher=teacher, teacher_objective=make_objective("fm"), source=HalfLabelSource(128, 3),
                            config=student_config, run_dir=tmp_path / method, teacher_objective_name="fm")
    assert result.couplings is None
    t_sw, _ = scores(teacher, toy, 1)
    s_sw, _ = scores(result.student, toy, 1)
    print(f"{method}: teacher SW {t_sw:.3f}, student SW {s_sw:.3f} at one call")
    assert s_sw < 0.5 * t_sw
    ckpt = load_checkpoint(tmp_path / method)
    assert ckpt.extra["sampler_steps"] == 1 and ckpt.extra["distillation"]["method"] == method
    assert ckpt.extra["distillation"]["members"] == 4
