"""Per-point segmentation heads on the student backbone (Point-MAE / ACT protocol).

Features of three student depths (the last block of each third) are concatenated per patch, pooled into a
global vector (max and mean, plus an object-category embedding for part segmentation), propagated back
to every point by inverse-distance interpolation from the 3 nearest patch centres, and classified by a
per-point MLP.
"""

from __future__ import annotations

import torch
from torch import nn

from act3d.models.student import StudentEncoder
from act3d.models.tokenizer import PointwiseMLP
from act3d.ops.grouping import Patches
from act3d.ops.indexing import gather_points
from act3d.ops.knn import knn


def interpolate_to_points(
    points: torch.Tensor, centers: torch.Tensor, features: torch.Tensor, k: int = 3
) -> torch.Tensor:
    """Inverse-distance weighted features of the `k` nearest centres. `(B, N, 3), (B, G, 3), (B, G, C) -> (B, N, C)`."""
    sq, idx = knn(points, centers, min(k, centers.shape[1]))
    weights = 1.0 / (sq + 1e-8)
    weights = weights / weights.sum(-1, keepdim=True)
    return (gather_points(features, idx) * weights.unsqueeze(-1)).sum(2)


def feature_layers(depth: int) -> tuple[int, ...]:
    """The blocks whose outputs the segmenter concatenates: the last of each third (4, 8, 12 of 12)."""
    return tuple(sorted({max(1, round(depth * f)) for f in (1 / 3, 2 / 3, 1.0)}))


class PointSegmenter(nn.Module):
    """Patches + the clouds' points (+ per-point extras such as colour, + an object category) ->
    `(B, N, num_classes)` logits."""

    def __init__(
        self,
        encoder: StudentEncoder,
        num_classes: int,
        num_categories: int = 0,
        point_extra: int = 0,
        hidden: int = 256,
    ):
        super().__init__()
        self.encoder, self.num_categories = encoder, num_categories
        depth, w = encoder.cfg.depth, encoder.cfg.width
        self.layers = feature_layers(depth)
        feat = w * len(self.layers)
        self.category_embed = (
            nn.Sequential(nn.Linear(num_categories, 64), nn.BatchNorm1d(64), nn.LeakyReLU(0.2))
            if num_categories
            else None
        )
        global_dim = 2 * feat + (64 if num_categories else 0)
        self.propagate = PointwiseMLP(feat + 3 + point_extra, 2 * hidden, hidden)
        self.head = nn.Sequential(
            PointwiseMLP(hidden + global_dim, 2 * hidden, hidden),
            nn.Dropout(0.5),
            nn.Linear(hidden, num_classes),
        )

    def forward(
        self,
        patches: Patches,
        points: torch.Tensor,
        extra: torch.Tensor | None = None,
        category: torch.Tensor | None = None,
    ) -> torch.Tensor:
        layers = self.encoder(patches.neighborhood, patches.center, return_layers=self.layers)
        tokens = torch.cat([h[:, 1:] for h in layers], dim=-1)  # (B, G, feat)
        glob = [tokens.max(dim=1).values, tokens.mean(dim=1)]
        if self.category_embed is not None:
            one_hot = nn.functional.one_hot(category, self.num_categories).float()
            glob.append(self.category_embed(one_hot))
        glob = torch.cat(glob, dim=-1)
        per_point = [interpolate_to_points(points, patches.center, tokens), points]
        if extra is not None:
            per_point.append(extra)
        x = self.propagate(torch.cat(per_point, dim=-1))
        x = torch.cat([x, glob.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)
        return self.head(x)
