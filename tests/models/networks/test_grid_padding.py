"""GridPadding: the smallest padding to a multiple, wrapped columns on a periodic grid, crop undoes pad."""

from __future__ import annotations

import pytest
import torch

from models.networks.grid_padding import GridPadding


@pytest.mark.parametrize(("h", "w", "periodic"), [(33, 49, False), (121, 240, True), (32, 30, True), (8, 8, True)])
def test_crop_undoes_pad_and_the_padded_grid_is_a_multiple(h: int, w: int, periodic: bool) -> None:
    plan = GridPadding.plan(h, w, 4, periodic_longitude=periodic)
    x = torch.randn(2, 3, h, w)
    padded = plan.pad(x)
    assert padded.shape[-2] % 4 == 0 and padded.shape[-1] % 4 == 0
    assert padded.shape[-2:] == plan.padded_shape(h, w)
    torch.testing.assert_close(plan.crop(padded), x)


def test_periodic_odd_width_pads_with_the_columns_from_the_other_side() -> None:
    """Width 30 on a periodic grid, multiple 4: wrapped columns, at least 4 each side; bounded inside."""
    plan = GridPadding.plan(16, 30, 4, periodic_longitude=True)
    assert plan.wrap and not plan.periodic_inside and plan.west >= 4 and plan.east >= 4
    x = torch.arange(30.0).expand(1, 1, 16, 30)
    padded = plan.pad(x)
    assert padded[0, 0, 0, : plan.west].tolist() == list(range(30 - plan.west, 30))
    assert padded[0, 0, 0, -plan.east :].tolist() == list(range(plan.east))


def test_divisible_periodic_grid_is_left_alone() -> None:
    plan = GridPadding.plan(32, 64, 4, periodic_longitude=True)
    assert plan.is_identity and plan.periodic_inside


def test_bounded_grid_replicates_its_edges() -> None:
    plan = GridPadding.plan(5, 7, 4, periodic_longitude=False)
    x = torch.arange(35.0).reshape(1, 1, 5, 7)
    padded = plan.pad(x)
    assert padded.shape[-2:] == (8, 8)
    assert padded[0, 0, plan.south, -1] == x[0, 0, 0, -1] and padded[0, 0, 0, plan.west] == x[0, 0, 0, 0]
