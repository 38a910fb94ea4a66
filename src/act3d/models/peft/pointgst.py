"""PointGST, point cloud graph spectral tuning (Liang et al., TPAMI 2025).

Official: jerryfeng2003/PointGST @7fbe92f. models/PGST.py (`get_basis` l.34-39, `PCSA` l.44-101) and
models/PointTransformer.py (`Block` l.131-156, `PointTransformer_PGST.forward` l.296-331). Every block gains
a spectral adapter (official `gft_adapter`), fed the tokens after the block's attention and added after its
MLP: a down-projection to `rank`, whose patch part is filtered in two graph Fourier bases, the global one of
all patch centres and the local ones of `local`-centre runs along a z-order curve, each by a shared
`rank x rank` layer, then up-projected (zero-initialised).

The bases are eigenvectors of a normalised graph Laplacian whose edge weights are the inverse pairwise
centre distances, scaled by the smallest positive distance. The official code takes that minimum over the
whole batch of a `torch.cdist` matrix (`L[L > 0]`), whose diagonal holds rounding residues rather than
zeros, so its scale is a residue (about 3e-5 where the true smallest distance is about 7e-3) and the basis
moves with float rounding. `basis: official` computes it op for op (float32, the same ops), to load the
official checkpoints and reproduce their numbers on the same kind of device; `basis: intended` takes the
diagonal as exactly zero, so the scale is the smallest distance between two centres of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from act3d.errors import ConfigError, require
from act3d.models.peft.method import BackboneShape, PeftMethod, register
from act3d.models.student import StudentEncoder
from act3d.models.transformer import Block
from act3d.ops.float32 import in_float32
from act3d.ops.grouping import Patches


@dataclass
class PointGstConfig:
    rank: int = 36  # the adapter's width (official `rank`)
    local: int = 32  # centres per local subgraph (official `local`); must divide the patch count
    basis: Literal["official", "intended"] = "official"

    def __post_init__(self) -> None:
        require(self.rank >= 1, "rank", "an integer >= 1", self.rank)
        require(self.local >= 1, "local", "an integer >= 1", self.local)


def normalized_laplacian(adjacency: torch.Tensor) -> torch.Tensor:
    """`(B, V, V)` -> `I - D^-1/2 A D^-1/2` (official `get_laplacian`, PGST.py l.6-32, with its 1e-6)."""
    d_inv_sqrt = torch.diag_embed(torch.rsqrt(torch.sum(adjacency, dim=-1) + 1e-6))
    eye = torch.eye(adjacency.size(-1), device=adjacency.device)
    return eye - d_inv_sqrt @ adjacency @ d_inv_sqrt


def graph_basis(center: torch.Tensor, rule: Literal["official", "intended"] = "official") -> torch.Tensor:
    """`(B, V, 3)` centres -> `(B, V, V)` eigenvectors of their graph's normalised Laplacian, as columns
    (official `get_basis`, l.34-39, which returns them untransposed and applies them as `U @ x`)."""
    dist = torch.cdist(center, center)
    eye = torch.eye(dist.size(-1), device=dist.device).unsqueeze(0)
    if rule == "intended":
        dist = dist * (1 - eye)  # the diagonal exactly zero: the scale is a distance between two centres
    weights = 1 / (dist / torch.min(dist[dist > 0], dim=-1, keepdim=True).values + eye)
    return torch.linalg.eigh(normalized_laplacian(weights))[1]


def z_order_keys(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, depth: int = 16) -> torch.Tensor:
    """Morton keys of integer coordinates: bit `i` of `x`, `y`, `z` at bits `3i + 2`, `3i + 1`, `3i` (the
    official `xyz2key` of models/z_order.py l.66-100, from O-CNN, without its lookup tables: the low `depth`
    bits of each coordinate's two's complement)."""
    x, y, z = x.long(), y.long(), z.long()
    key = torch.zeros_like(x)
    for i in range(depth):
        key = key | ((x >> i) & 1) << (3 * i + 2) | ((y >> i) & 1) << (3 * i + 1) | ((z >> i) & 1) << (3 * i)
    return key


@dataclass
class SpectralBases:
    """One batch's graph Fourier bases: the global `(B, G, G)`, the local `(B, G / local, local, local)`,
    and the z-order permutation of the patches and its inverse, `(B, G)` each."""

    full: torch.Tensor
    local: torch.Tensor
    order: torch.Tensor
    unorder: torch.Tensor


@in_float32
def spectral_bases(center: torch.Tensor, local: int, rule: Literal["official", "intended"]) -> SpectralBases:
    """`(B, G, 3)` patch centres -> their `SpectralBases` (official `PointTransformer_PGST.forward`,
    l.300-310: z-order keys of the centres x 100, y first)."""
    b, g, _ = center.shape
    c = center * 100
    _, order = torch.sort(z_order_keys(c[:, :, 1], c[:, :, 0], c[:, :, 2]))
    _, unorder = torch.sort(order)
    sub_center = _permute(center, order).reshape(b * (g // local), local, 3)
    sub_basis = graph_basis(sub_center, rule).reshape(b, g // local, local, local)
    return SpectralBases(graph_basis(center, rule), sub_basis, order, unorder)


def _permute(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`(B, N, C)` rows reordered by `(B, N)` (official `sort`, PGST.py l.41-42)."""
    return torch.gather(x, dim=1, index=index.unsqueeze(-1).expand(-1, -1, x.size(-1)))


class SpectralAdapter(nn.Module):
    """Official `PCSA` (PGST.py l.44-101): `(B, 1 + G, W)` tokens -> `(B, 1 + G, W)`."""

    def __init__(self, width: int, rank: int):
        super().__init__()
        self.rank = rank
        self.norm_ly1, self.norm_ly2 = nn.LayerNorm(rank), nn.LayerNorm(rank)
        self.down, self.up = nn.Linear(width, rank), nn.Linear(rank, width)
        self.adapt1 = nn.Linear(rank, rank)  # shared by the global and the local filter
        nn.init.zeros_(self.adapt1.weight)
        nn.init.zeros_(self.adapt1.bias)
        nn.init.xavier_uniform_(self.down.weight)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def _filter(self, x: torch.Tensor, basis: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        """`x` into the basis, `+ silu(adapt1(norm(.)))` there, and back."""
        x_f = basis @ x
        x_f = x_f + F.silu(self.adapt1(norm(x_f)))
        return basis.transpose(-2, -1) @ x_f

    def forward(self, tokens: torch.Tensor, bases: SpectralBases) -> torch.Tensor:
        h = self.down(tokens)
        b, groups, local, _ = bases.local.shape
        g = groups * local
        x = h[:, -g:, :]  # the patches, before the activation
        h = F.silu(h)
        sub = _permute(x, bases.order).reshape(b, groups, local, self.rank)
        sub = self._filter(sub, bases.local, self.norm_ly2).reshape(b, g, self.rank)
        x = self._filter(x, bases.full, self.norm_ly1) + _permute(sub, bases.unorder)
        h = torch.cat([h[:, :-g], x + h[:, -g:]], dim=1)
        return self.up(h)


class SpectralBlock(nn.Module):
    """What PointGST adds to one block: its `gft_adapter`, fed after the attention, added after the MLP."""

    def __init__(self, width: int, rank: int):
        super().__init__()
        self.gft_adapter = SpectralAdapter(width, rank)

    def forward(self, block: Block, x: torch.Tensor, bases: SpectralBases) -> torch.Tensor:
        """Official `Block.forward` (PointTransformer.py l.149-156) on the frozen `block`."""
        return block(x, branch=lambda tokens: self.gft_adapter(tokens, bases))


@register
class SpectralTuning(PeftMethod):
    """PointGST's additions to a `depth`-block backbone cut into `num_groups` patches."""

    name = "pointgst"
    Config = PointGstConfig
    official_names = (("blocks.", "blocks.blocks."),)  # the per-block adapters, inside the official encoder
    official_mark = ".gft_adapter."

    def __init__(self, cfg: PointGstConfig, backbone: BackboneShape):
        super().__init__()
        width, depth, num_groups = backbone.width, backbone.depth, backbone.num_groups
        if num_groups % cfg.local:
            raise ConfigError(
                f"pointgst.local {cfg.local} does not divide the {num_groups} patches per cloud; "
                "expected a divisor (the official local subgraphs split the z-ordered patches evenly)"
            )
        self.cfg = cfg
        self.feature_dim = 2 * width
        self.blocks = nn.ModuleList(SpectralBlock(width, cfg.rank) for _ in range(depth))

    def forward(self, encoder: StudentEncoder, patches: Patches, points: torch.Tensor) -> torch.Tensor:
        """-> `(B, 2W)`: the normalised cls token beside the max over the patch tokens (l.296-331)."""
        with torch.no_grad():  # the bases depend on the centres alone
            bases = spectral_bases(patches.center.float(), self.cfg.local, self.cfg.basis)
        x = encoder.run(patches, run=lambda i, block, x: self.blocks[i](block, x, bases))
        return torch.cat([x[:, 0], x[:, 1:].max(dim=1).values], dim=-1)
