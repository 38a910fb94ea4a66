"""Turning point patches into tokens: the mini-PointNet patch embedding and the centre position MLP."""

from __future__ import annotations

import torch
from torch import nn

from act3d.models.layers import PointwiseMLP


class PatchEmbed(nn.Module):
    """Mini-PointNet (Point-BERT's `Encoder`): `(B, G, K, 3)` patches -> `(B, G, C)` tokens.

    Per point 3 -> 128 -> 256, max-pool, concatenate the pooled feature to every point (512), then
    512 -> 512 -> C and max-pool again. `hidden` scales the inner widths (1.0 = paper).
    """

    def __init__(self, out_dim: int, hidden: float = 1.0):
        super().__init__()
        c1, c2, c3 = int(128 * hidden), int(256 * hidden), int(512 * hidden)
        self.first_conv = PointwiseMLP(3, c1, c2)
        self.second_conv = PointwiseMLP(2 * c2, c3, out_dim)
        self.out_dim = out_dim

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(patches)  # (B, G, K, c2)
        pooled = x.max(dim=2, keepdim=True).values
        x = self.second_conv(torch.cat([pooled.expand_as(x), x], dim=-1))  # (B, G, K, C)
        return x.max(dim=2).values


class CenterEmbed(nn.Module):
    """Positional embedding of patch centres: Linear(3, 128) -> GELU -> Linear(128, D). `(B, G, 3) -> (B, G, D)`."""

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, center: torch.Tensor) -> torch.Tensor:
        return self.mlp(center)
