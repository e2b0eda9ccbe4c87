"""GridUNet respects the sphere: longitude is periodic, shapes and conditioning are checked."""

from __future__ import annotations

import pytest
import torch

from models.networks.grid_unet import GridUNet, pad_sphere


def randomised(net: GridUNet) -> GridUNet:
    """Zero-initialised output layers would make any equivariance test pass trivially."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.2)
    return net


def make_net(**kwargs) -> GridUNet:
    defaults = dict(in_channels=3, out_channels=3, condition_channels=2, global_features=4, base_channels=16,
                    channel_mults=(1, 2, 2), blocks_per_level=1)
    defaults.update(kwargs)
    return randomised(GridUNet(**defaults)).eval()


def inputs(batch: int = 2, h: int = 16, w: int = 32):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, h, w, generator=g)
    cond = {"fields": torch.randn(batch, 2, h, w, generator=g), "globals": torch.randn(batch, 4, generator=g)}
    t = torch.rand(batch, generator=g)
    return x, t, cond


def test_output_has_the_input_shape_and_depends_on_every_input() -> None:
    net = make_net()
    x, t, cond = inputs()
    out = net(x, t, cond)
    assert out.shape == x.shape
    for changed in (
        net(x, t + 0.3, cond),
        net(x, t, {**cond, "fields": cond["fields"] + 1}),
        net(x, t, {**cond, "globals": cond["globals"] + 1}),
    ):
        assert not torch.allclose(changed, out)


def test_longitude_shift_commutes_with_the_network() -> None:
    """Rolling every input by 4 longitudes rolls the output by 4 (circular padding, no edge in longitude)."""
    net = make_net()
    x, t, cond = inputs()
    shift = 4  # a multiple of the total downsampling factor (2 ** 2)
    out = net(x, t, cond)
    rolled = net(
        torch.roll(x, shift, dims=-1), t, {**cond, "fields": torch.roll(cond["fields"], shift, dims=-1)}
    )
    torch.testing.assert_close(rolled, torch.roll(out, shift, dims=-1), atol=1e-4, rtol=1e-4)


def test_latitude_shift_does_not_commute() -> None:
    """Latitude is not periodic: the poles are edges, so a roll in latitude changes the answer."""
    net = make_net()
    x, t, cond = inputs()
    out = net(x, t, cond)
    rolled = net(torch.roll(x, 4, dims=-2), t, {**cond, "fields": torch.roll(cond["fields"], 4, dims=-2)})
    assert not torch.allclose(rolled, torch.roll(out, 4, dims=-2), atol=1e-3)


def test_pad_sphere_wraps_longitude_and_replicates_poles() -> None:
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    padded = pad_sphere(x, 1)
    assert padded.shape == (1, 1, 5, 6)
    torch.testing.assert_close(padded[0, 0, 1:-1, 0], x[0, 0, :, -1])  # west edge wraps to the east
    torch.testing.assert_close(padded[0, 0, 0, 1:-1], x[0, 0, 0, :])  # north pole row replicated


def test_wrong_condition_channels_are_refused() -> None:
    net = make_net()
    x, t, cond = inputs()
    with pytest.raises(ValueError, match="condition channels"):
        net(x, t, {**cond, "fields": cond["fields"][:, :1]})


@pytest.mark.parametrize(("h", "w", "periodic"), [(33, 49, False), (121, 240, True), (17, 30, True), (5, 7, False)])
def test_any_grid_size_trains_padded_and_cropped_back(h: int, w: int, periodic: bool) -> None:
    """Grids not divisible by the U-Net's 4 (33×49 regional, 121×240 global, 17×30 global with an odd width)
    give an output of the input's shape, finite, with a gradient reaching every input cell."""
    net = make_net(periodic_longitude=periodic, grid_shape=(h, w)).train()
    x, t, cond = inputs(batch=1, h=h, w=w)
    x.requires_grad_(True)
    out = net(x, t, cond)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().sum().backward()
    assert (x.grad.abs().sum(dim=1) > 0).all()


def test_a_regional_grid_has_edges_in_longitude() -> None:
    """Bounded longitude: no wrap round, so rolling the input does not roll the output."""
    net = make_net(periodic_longitude=False)
    x, t, cond = inputs()
    out = net(x, t, cond)
    rolled = net(torch.roll(x, 4, dims=-1), t, {**cond, "fields": torch.roll(cond["fields"], 4, dims=-1)})
    assert not torch.allclose(rolled, torch.roll(out, 4, dims=-1), atol=1e-3)


def test_odd_periodic_width_needs_the_grid_at_construction() -> None:
    """A periodic U-Net built without the grid cannot silently convolve a wrapped, padded grid."""
    net = make_net()
    x, t, cond = inputs(w=30)
    with pytest.raises(ValueError, match="grid_shape"):
        net(x, t, cond)


def test_dropped_condition_uses_the_null_embedding() -> None:
    """CFG: a sample marked ``drop`` differs from the same zeroed condition without the mark."""
    net = make_net()
    x, t, cond = inputs()
    zeroed = {k: torch.zeros_like(v) for k, v in cond.items()}
    marked = net(x, t, zeroed, drop=torch.tensor([True, False]))
    unmarked = net(x, t, zeroed)
    assert not torch.allclose(marked[0], unmarked[0])
    torch.testing.assert_close(marked[1], unmarked[1])


def test_every_parameter_gets_a_gradient_without_guidance() -> None:
    """DDP requires every parameter in the graph: the CFG null embedding too, even with no drop."""
    net = make_net()
    x, t, cond = inputs()
    net(x, t, cond).square().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    assert missing == []
