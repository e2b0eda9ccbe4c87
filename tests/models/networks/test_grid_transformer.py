"""GridTransformer: output shape, unpatchify puts each patch back in its place, conditioning matters."""

from __future__ import annotations

import pytest
import torch

from models.networks.grid_transformer import GridTransformer


def make_net() -> GridTransformer:
    torch.manual_seed(0)
    net = GridTransformer(in_channels=3, out_channels=3, condition_channels=2, global_features=4, width=32,
                          depth=2, heads=4, patch_size=2)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    return net.eval()


def test_shapes_and_dependence_on_inputs() -> None:
    net = make_net()
    x = torch.randn(2, 3, 8, 16)
    cond = {"fields": torch.randn(2, 2, 8, 16), "globals": torch.randn(2, 4)}
    out = net(x, torch.rand(2), cond)
    assert out.shape == x.shape
    assert not torch.allclose(out, net(x, torch.rand(2), cond))
    assert not torch.allclose(out, net(x, torch.rand(2), {**cond, "globals": cond["globals"] + 1}))


def test_a_local_change_stays_local_without_attention() -> None:
    """With attention and MLP gates at zero, each output patch depends only on its own input patch:
    this pins the patchify/unpatchify index order."""
    net = make_net()
    for block in net.blocks:
        torch.nn.init.zeros_(block.modulation.weight)
        torch.nn.init.zeros_(block.modulation.bias)
    x = torch.randn(1, 3, 8, 16)
    cond = {"fields": torch.zeros(1, 2, 8, 16), "globals": torch.zeros(1, 4)}
    t = torch.tensor([0.5])
    base = net(x, t, cond)
    bumped = x.clone()
    bumped[0, :, 2:4, 6:8] += 1.0  # exactly one 2×2 patch
    diff = (net(bumped, t, cond) - base).abs().sum(1)[0]
    changed = diff > 1e-6
    assert changed[2:4, 6:8].all() and changed.sum() == 4


@pytest.mark.parametrize(("h", "w"), [(7, 16), (33, 49)])
def test_a_grid_that_does_not_divide_into_patches_is_padded_and_cropped(h: int, w: int) -> None:
    """7×16 and 33×49: padded to whole patches, output cropped back to the input's shape, finite."""
    net = make_net()
    out = net(torch.randn(1, 3, h, w), torch.rand(1), {"fields": torch.randn(1, 2, h, w), "globals": torch.randn(1, 4)})
    assert out.shape == (1, 3, h, w) and torch.isfinite(out).all()
