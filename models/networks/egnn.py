"""E(3)-equivariant graph network (EGNN, Satorras, Hoogeboom & Welling 2021) as a velocity network.

``net(x [B, N, 3], t [B], condition, *, drop=None) -> v [B, N, 3]``.

Each layer (edges i←j, fully connected unless ``edges`` is given):

    m_ij = φ_e(h_i, h_j, ‖x_i − x_j‖², a_ij [, ‖c_i − c_j‖², (x_i − x_j)·(c_i − c_j)])
    x_i ← x_i + mean_j [ (x_i − x_j)/(‖x_i − x_j‖ + 1) · φ_x(m_ij)
                         [+ (c_i − c_j)/(‖c_i − c_j‖ + 1) · φ_c(m_ij)] ]
    h_i ← h_i + φ_h(h_i, mean_j m_ij, temb)

Node states ``h`` start from the time embedding plus optional node features and an optional learned
embedding per node index (``n_nodes``: for a fixed molecule every atom gets its own identity). Node
features of a fixed molecule (atom types, charges: ``node_features`` [N, F] at construction) are part of
the network, not of the condition, so classifier-free guidance (which zeroes the condition of dropped
samples, see models.guidance) never erases them; features that vary per sample go in
``condition["nodes"]`` [B, N, F] (and are dropped with the condition). ``condition["coords"]``
([B, N, 3]) is an optional conditioning structure (e.g. x(t) when predicting x(t + τ)); it enters only
through invariants and relative vectors.

Output: ``v = x_L − x_0`` minus its mean over nodes. Hence, for any orthogonal Q and shift b applied to x
(and to the conditioning coordinates), ``v(x Qᵀ + b) = v(x) Qᵀ`` (E(3) equivariance, reflections
included) and ``Σ_i v_i = 0`` (the centre of mass does not move; pair with zero-COM noise).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.guidance import NamedCondition
from models.networks.embeddings import TimeEmbedding


def _mlp(inp: int, hidden: int, out: int, *, last_act: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(inp, hidden), nn.SiLU(), nn.Linear(hidden, out)]
    if last_act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class EGNNLayer(nn.Module):
    """One E(3)-equivariant message-passing layer (updates node states and coordinates)."""

    def __init__(self, hidden: int, *, edge_dim: int = 0, conditioned: bool = False) -> None:
        super().__init__()
        self.conditioned = conditioned
        n_invariants = 1 + (2 if conditioned else 0)
        self.edge = _mlp(2 * hidden + n_invariants + edge_dim, hidden, hidden, last_act=True)
        self.node = _mlp(2 * hidden, hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.coord = _mlp(hidden, hidden, 1)
        nn.init.zeros_(self.coord[-1].weight)  # start as the identity on coordinates
        nn.init.zeros_(self.coord[-1].bias)
        self.cond_coord = _mlp(hidden, hidden, 1) if conditioned else None

    def forward(
        self,
        h: Tensor,
        x: Tensor,
        src: Tensor,
        dst: Tensor,
        *,
        edge_attr: Tensor | None,
        cond: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        diff = x[:, dst] - x[:, src]  # x_i − x_j for edge (i = dst ← j = src), [B, E, 3]
        dist2 = (diff**2).sum(-1, keepdim=True)
        feats = [h[:, dst], h[:, src], dist2]
        if self.conditioned:
            assert cond is not None
            cdiff = cond[:, dst] - cond[:, src]
            feats += [(cdiff**2).sum(-1, keepdim=True), (diff * cdiff).sum(-1, keepdim=True)]
        if edge_attr is not None:
            feats.append(edge_attr.expand(h.shape[0], -1, -1) if edge_attr.ndim == 2 else edge_attr)
        m = self.edge(torch.cat(feats, dim=-1))  # [B, E, hidden]
        shift = diff / (dist2.sqrt() + 1.0) * self.coord(m)
        if self.conditioned:
            cdiff = cond[:, dst] - cond[:, src]
            shift = shift + cdiff / (cdiff.norm(dim=-1, keepdim=True) + 1.0) * self.cond_coord(m)
        n = x.shape[1]
        degree = (
            torch.zeros(n, dtype=x.dtype, device=x.device)
            .index_add_(0, dst, torch.ones_like(dst, dtype=x.dtype))
            .clamp_min(1.0)[None, :, None]
        )
        x = x + torch.zeros_like(x).index_add_(1, dst, shift) / degree
        agg = torch.zeros_like(h).index_add_(1, dst, m) / degree
        h = h + self.node(torch.cat([self.norm(h), agg], dim=-1))
        return h, x


class EGNN(nn.Module):
    """EGNN velocity network for point clouds/molecules (see the module docstring for the contract).

    Args:
        node_features: [N, F] fixed per-node features (a buffer saved with the weights), or None.
        node_dim: features per node given per sample as ``condition["nodes"]`` [B, N, F] (0: none).
        n_nodes: if set, a learned embedding per node index (fixed-size molecules).
        hidden, layers, time_dim: widths and depth.
        edges: ``[E, 2]`` (src, dst) directed edges; None = fully connected without self-loops.
        edge_dim: features per edge given as ``condition["edge_attr"]`` ([E, F] or [B, E, F]).
        conditioned: expect ``condition["coords"]`` [B, N, 3] (a conditioning structure).
        cfg: learn a null embedding for classifier-free guidance (``drop`` = 1 drops the condition).
    """

    def __init__(
        self,
        *,
        node_features: Tensor | None = None,
        node_dim: int = 0,
        n_nodes: int | None = None,
        hidden: int = 64,
        layers: int = 4,
        time_dim: int = 64,
        edges: Tensor | None = None,
        edge_dim: int = 0,
        conditioned: bool = False,
        cfg: bool = False,
    ) -> None:
        super().__init__()
        self.node_dim, self.n_nodes, self.edge_dim = node_dim, n_nodes, edge_dim
        self.conditioned, self.cfg = conditioned, cfg
        self.time = TimeEmbedding(hidden, dim=time_dim)
        self.node_in = nn.Linear(node_dim, hidden) if node_dim else None
        if node_features is not None:
            node_features = torch.as_tensor(node_features, dtype=torch.float32)
            if node_features.ndim != 2 or (n_nodes is not None and node_features.shape[0] != n_nodes):
                raise ValueError(
                    f"node_features must be [N, F] (N = n_nodes), got {tuple(node_features.shape)}"
                )
            self.fixed_in: nn.Module | None = nn.Linear(node_features.shape[1], hidden)
        else:
            self.fixed_in = None
        self.register_buffer("node_features", node_features)
        self.index_embedding = nn.Embedding(n_nodes, hidden) if n_nodes else None
        self.null_embedding = nn.Parameter(torch.zeros(hidden)) if cfg else None
        self.layers = nn.ModuleList(
            EGNNLayer(hidden, edge_dim=edge_dim, conditioned=conditioned) for _ in range(layers)
        )
        if edges is not None:
            edges = torch.as_tensor(edges, dtype=torch.long)
            if edges.ndim != 2 or edges.shape[1] != 2:
                raise ValueError(f"edges must be [E, 2], got {tuple(edges.shape)}")
        self.register_buffer("edges", edges, persistent=False)

    def _edge_index(self, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        if self.edges is not None:
            return self.edges[:, 0].to(device), self.edges[:, 1].to(device)
        idx = torch.arange(n, device=device)
        src, dst = torch.meshgrid(idx, idx, indexing="ij")
        keep = src != dst
        return src[keep], dst[keep]

    def forward(self, x: Tensor, t: Tensor, condition: NamedCondition = None, *, drop: Tensor | None = None) -> Tensor:
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"x must be [B, N, 3], got {tuple(x.shape)}")
        condition = condition or {}
        batch, n, _ = x.shape
        if self.n_nodes is not None and n != self.n_nodes:
            raise ValueError(f"this network was built for {self.n_nodes} nodes, got {n}")
        t = t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)
        h = self.time(t).to(x.dtype)[:, None, :].expand(batch, n, -1)
        if drop is not None and self.null_embedding is not None:
            h = h + drop.to(x.dtype)[:, None, None] * self.null_embedding
        if self.node_in is not None:
            nodes = condition.get("nodes")
            if nodes is None:
                raise ValueError(f"this network expects condition['nodes'] with {self.node_dim} features")
            if nodes.ndim != 3 or nodes.shape[:2] != (batch, n):
                raise ValueError(
                    f"condition['nodes'] must be [B, N, F] = [{batch}, {n}, F], got {tuple(nodes.shape)}"
                )
            h = h + self.node_in(nodes.to(x.dtype))
        if self.fixed_in is not None:
            if self.node_features.shape[0] != n:
                raise ValueError(f"node_features has {self.node_features.shape[0]} nodes, x has {n}")
            h = h + self.fixed_in(self.node_features.to(x.dtype))[None]
        if self.index_embedding is not None:
            h = h + self.index_embedding.weight.to(x.dtype)[None]
        cond = condition.get("coords")
        if self.conditioned:
            if cond is None or tuple(cond.shape) != tuple(x.shape):
                raise ValueError("this network expects condition['coords'] shaped like x")
            cond = cond.to(x.dtype)
            if drop is not None:  # a dropped condition is its centroid: no directional information left
                keep = (1.0 - drop.to(x.dtype))[:, None, None]
                cond = cond * keep + cond.mean(dim=1, keepdim=True) * (1.0 - keep)
        edge_attr = condition.get("edge_attr") if self.edge_dim else None
        if self.edge_dim and edge_attr is None:
            raise ValueError(f"this network expects condition['edge_attr'] with {self.edge_dim} features")
        src, dst = self._edge_index(n, x.device)
        h = h.contiguous()
        y = x
        for layer in self.layers:
            h, y = layer(
                h, y, src, dst, edge_attr=None if edge_attr is None else edge_attr.to(x.dtype), cond=cond
            )
        v = y - x
        return v - v.mean(dim=1, keepdim=True)
