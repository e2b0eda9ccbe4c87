"""Objectives: targets, conversions between predictions, weights and masks in the loss."""

from __future__ import annotations

import pytest
import torch

from models.objectives import PRESETS, make_objective
from models.paths import bcast

pytestmark = pytest.mark.usefixtures("single_thread")

OBJECTIVES = ["fm", "eps-cosine", "x0-linear_beta", "v-sigmoid", "edm", "velocity-cosine"]


@pytest.mark.parametrize("name", OBJECTIVES)
def test_the_target_output_converts_back_to_the_true_data_noise_and_velocity(name: str) -> None:
    """Feeding the exact target as the network output recovers x1, x0 and the path velocity da·x1 + db·x0."""
    obj = make_objective(name)
    g = torch.Generator().manual_seed(0)
    x1, x0 = (
        torch.randn(64, 3, generator=g, dtype=torch.float64),
        torch.randn(64, 3, generator=g, dtype=torch.float64),
    )
    t = torch.rand(64, generator=g, dtype=torch.float64) * 0.9 + 0.05
    xt = obj.path.sample_xt(x1, x0, t)
    c, d = obj.target_coefficients(t)
    target = bcast(c, x1) * x1 + bcast(d, x1) * x0
    pred = obj.predict_from_output(target, xt, t)
    k = obj.path.coefficients(t)
    assert torch.allclose(pred.x1, x1, atol=1e-8) and torch.allclose(pred.x0, x0, atol=1e-8)
    assert torch.allclose(pred.velocity, bcast(k.da, x1) * x1 + bcast(k.db, x1) * x0, atol=1e-7)


def test_flow_matching_target_is_x1_minus_x0() -> None:
    """The flow-matching regression target is the straight-line velocity x1 - x0."""
    obj = make_objective("fm")
    x1, x0 = torch.randn(8, 2), torch.randn(8, 2)
    seen = {}

    def net(x, t, cond):  # type: ignore[no-untyped-def]
        seen["x"], seen["t"] = x, t
        return x1 - x0

    out = obj.loss(net, x1, None, t=torch.full((8,), 0.3), noise=x0)
    assert torch.allclose(seen["x"], 0.7 * x0 + 0.3 * x1)
    assert float(out.loss) == pytest.approx(0.0, abs=1e-12)


def test_loss_weights_and_mask() -> None:
    """Per-element weights scale the squared error; masked elements do not count at all."""
    obj = make_objective("fm")
    x1, x0 = torch.zeros(2, 4), torch.zeros(2, 4)
    t = torch.full((2,), 0.5)

    def net(x, t, cond):  # type: ignore[no-untyped-def]
        return torch.tensor([[1.0, 1.0, 1.0, 100.0]]).expand(2, 4)

    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert float(obj.loss(net, x1, None, t=t, noise=x0, mask=mask).loss) == pytest.approx(1.0)
    weight = torch.tensor([2.0, 2.0, 2.0, 0.0])
    assert float(obj.loss(net, x1, None, t=t, noise=x0, weight=weight, mask=mask).loss) == pytest.approx(2.0)


def test_diffusion_predictions_refuse_the_singular_linear_path() -> None:
    """eps / x0 / v on the flow-matching path would divide by zero at an end: refused with a clear error."""
    with pytest.raises(Exception, match="variance-preserving"):
        make_objective({"prediction": "eps", "path": "linear"})


def test_presets_cover_every_prediction_and_schedule() -> None:
    for pred in ("eps", "x0", "v"):
        for path in ("linear_beta", "cosine", "sigmoid"):
            assert make_objective(f"{pred}-{path}").name == f"{pred}-{path}"
    assert "fm" in PRESETS and make_objective("edm").prediction == "edm"
