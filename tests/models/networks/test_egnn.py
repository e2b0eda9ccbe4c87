"""EGNN velocity network: E(3) equivariance, translation invariance, zero centre-of-mass velocity."""

from __future__ import annotations

import pytest
import torch

from models.networks.egnn import EGNN


def _orthogonal(seed: int, *, reflect: bool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    if (torch.det(q) < 0) != reflect:
        q[:, 0] = -q[:, 0]
    return q


def _net(**kw) -> EGNN:
    torch.manual_seed(0)
    net = EGNN(hidden=32, layers=3, time_dim=16, **kw).double()
    # the coordinate heads start at zero (identity); randomise them so the test can fail
    for layer in net.layers:
        torch.nn.init.normal_(layer.coord[-1].weight, std=0.5)
    return net


@pytest.mark.parametrize("reflect", [False, True])
def test_rotating_the_input_rotates_the_velocity(reflect: bool) -> None:
    """v(x Qᵀ + b) = v(x) Qᵀ for a random rotation (and a reflection) Q and a shift b."""
    gen = torch.Generator().manual_seed(1)
    net = _net(n_nodes=7, node_dim=2, node_features=torch.randn(7, 4, generator=gen))
    x = torch.randn(4, 7, 3, generator=gen, dtype=torch.float64)
    nodes = torch.randn(4, 7, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(4, generator=gen, dtype=torch.float64)
    q = _orthogonal(2, reflect=reflect)
    b = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    v = net(x, t, {"nodes": nodes})
    v_rot = net(x @ q.T + b, t, {"nodes": nodes})
    assert v.abs().max() > 1e-3  # not trivially zero
    torch.testing.assert_close(v_rot, v @ q.T, atol=1e-10, rtol=1e-8)


def test_conditioned_network_is_equivariant_when_both_structures_rotate() -> None:
    """With a conditioning structure c: v(x Qᵀ, c Qᵀ) = v(x, c) Qᵀ; rotating only x changes the answer."""
    net = _net(conditioned=True, n_nodes=5)
    for layer in net.layers:
        torch.nn.init.normal_(layer.cond_coord[-1].weight, std=0.5)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    c = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    t = torch.full((2,), 0.4, dtype=torch.float64)
    q = _orthogonal(4, reflect=False)
    v = net(x, t, {"coords": c})
    torch.testing.assert_close(net(x @ q.T, t, {"coords": c @ q.T}), v @ q.T, atol=1e-10, rtol=1e-8)
    assert (net(x @ q.T, t, {"coords": c}) - v @ q.T).abs().max() > 1e-4


def test_velocity_has_zero_mean_and_is_translation_invariant() -> None:
    """Σ_i v_i = 0 (centre of mass fixed) and shifting the input leaves v unchanged."""
    net = _net()
    x = torch.randn(3, 6, 3, dtype=torch.float64)
    t = torch.rand(3, dtype=torch.float64)
    v = net(x, t)
    torch.testing.assert_close(v.sum(dim=1), torch.zeros(3, 3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(net(x + 5.0, t), v, atol=1e-10, rtol=1e-8)


def test_permuting_nodes_permutes_the_velocity_without_index_embeddings() -> None:
    """Without per-index embeddings the network is permutation-equivariant (features permuted too)."""
    net = _net(node_dim=3)
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    nodes = torch.randn(2, 6, 3, dtype=torch.float64)
    t = torch.rand(2, dtype=torch.float64)
    perm = torch.randperm(6)
    v = net(x, t, {"nodes": nodes})
    torch.testing.assert_close(
        net(x[:, perm], t, {"nodes": nodes[:, perm]}), v[:, perm], atol=1e-10, rtol=1e-8
    )


def test_works_with_the_core_objective_and_cfg_null_condition() -> None:
    """The core's flow-matching loss and a CFG call (condition zeroed for dropped samples) run, and the
    prediction stays equivariant when everything is rotated."""
    from models.guidance import call_net
    from models.objectives import make_objective

    net = _net(conditioned=True, n_nodes=5, node_features=torch.eye(5), cfg=True)
    x1 = torch.randn(3, 5, 3, dtype=torch.float64)
    cond = {"coords": torch.randn(3, 5, 3, dtype=torch.float64)}
    out = make_objective("fm").loss(net, x1, cond)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    drop = torch.tensor([True, False, True])
    t = torch.rand(3, dtype=torch.float64)
    q = _orthogonal(6, reflect=False)
    v = call_net(net, x1, t, cond, drop)
    v_rot = call_net(net, x1 @ q.T, t, {"coords": cond["coords"] @ q.T}, drop)
    torch.testing.assert_close(v_rot, v @ q.T, atol=1e-10, rtol=1e-8)


def test_sparse_edges_with_attributes_and_a_training_step() -> None:
    """Given edges and edge features the output is still equivariant, and a gradient step lowers a loss."""
    edges = torch.tensor([[0, 1], [1, 0], [1, 2], [2, 1], [2, 3], [3, 2]])
    attr = torch.randn(6, 2, dtype=torch.float64)
    net = _net(edges=edges, edge_dim=2, n_nodes=4)
    x = torch.randn(8, 4, 3, dtype=torch.float64)
    t = torch.rand(8, dtype=torch.float64)
    q = _orthogonal(5, reflect=False)
    v = net(x, t, {"edge_attr": attr})
    torch.testing.assert_close(net(x @ q.T, t, {"edge_attr": attr}), v @ q.T, atol=1e-10, rtol=1e-8)
    target = -(x - x.mean(dim=1, keepdim=True))  # an equivariant target: pull towards the centroid
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = ((net(x, t, {"edge_attr": attr}) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
