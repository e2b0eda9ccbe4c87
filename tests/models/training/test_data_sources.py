"""In-memory data sources (models.training.data.TensorSource)."""

from __future__ import annotations

import torch

from models.training import TensorSource


def test_smoothing_adds_its_own_gaussian_kernel_noise_and_none_by_default() -> None:
    """With smoothing h the batch is the same examples plus h·ε (ε of unit variance, from its own stream, the same
    for the same step); without it the examples come back exactly."""
    x = torch.zeros(100, 8)
    plain = TensorSource(x, batch_size=4096, seed=3)
    assert torch.equal(plain.batch(0).x1, torch.zeros(4096, 8))
    smooth = TensorSource(x, batch_size=4096, seed=3, smoothing=0.25)
    a, b, c = smooth.batch(0).x1, smooth.batch(0).x1, smooth.batch(1).x1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float(a.std()) - 0.25) < 0.01
    ranks = torch.cat([smooth.batch(0, rank=r, world_size=2).x1 for r in range(2)])
    assert torch.equal(ranks, a)  # the ranks' halves are the single process's batch


def test_probabilities_draw_examples_in_proportion_and_are_checked() -> None:
    """Examples are drawn in proportion to ``probabilities`` (the same draw for the same step), conditions follow
    their examples, and a vector of the wrong length is refused."""
    import pytest

    x = torch.arange(4, dtype=torch.float32)[:, None]
    p = torch.tensor([0.7, 0.1, 0.1, 0.1], dtype=torch.float64)
    source = TensorSource(x, batch_size=20000, condition=x * 10, probabilities=p, seed=0)
    batch = source.batch(0)
    share = torch.bincount(batch.x1[:, 0].long(), minlength=4) / 20000
    assert torch.allclose(share, p.float(), atol=0.015)
    assert torch.equal(batch.condition, batch.x1 * 10) and torch.equal(source.batch(0).x1, batch.x1)
    with pytest.raises(ValueError, match="one entry per example"):
        TensorSource(x, batch_size=8, probabilities=p[:3])


def test_condition_noise_blurs_only_float_conditions_from_its_own_stream() -> None:
    """condition_noise σ adds σ·ε to every floating-point condition (unit-variance ε, the same for the same step,
    independent of the smoothing kernel), leaves the targets and integer conditions alone, splits over ranks as
    one batch, and a negative σ is refused."""
    import pytest

    x = torch.zeros(50, 6)
    cond = {"state": torch.zeros(50, 6), "label": torch.arange(50)}
    source = TensorSource(x, batch_size=4096, condition=cond, seed=1, smoothing=0.3, condition_noise=0.5)
    a, b, c = source.batch(0), source.batch(0), source.batch(1)
    assert torch.equal(a.condition["state"], b.condition["state"])
    assert not torch.equal(a.condition["state"], c.condition["state"])
    assert abs(float(a.condition["state"].std()) - 0.5) < 0.02
    assert abs(float(torch.corrcoef(torch.stack([a.x1.flatten(), a.condition["state"].flatten()]))[0, 1])) < 0.02
    plain = TensorSource(x, batch_size=4096, condition=cond, seed=1, smoothing=0.3)
    assert torch.equal(plain.batch(0).x1, a.x1) and torch.equal(plain.batch(0).condition["label"], a.condition["label"])
    ranks = torch.cat([source.batch(0, rank=r, world_size=2).condition["state"] for r in range(2)])
    assert torch.equal(ranks, a.condition["state"])
    with pytest.raises(ValueError, match="condition_noise"):
        TensorSource(x, batch_size=8, condition=cond, condition_noise=-0.1)
