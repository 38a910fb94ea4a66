"""Per-point segmentation heads on the student backbone, as the official ACT segmentation models
(`part_segmentation/models/pt.py`, `semantic_segmentation/models/pt.py`).

The backbone runs over the patch tokens alone (no cls token). The outputs of three blocks (the last of
each third: 4, 8, 12 of 12), each through the backbone's final norm, are concatenated per patch and pooled
into a global vector (max and mean, plus an object-category embedding for part segmentation). Feature
propagation (PointNet++ `PointNetFeaturePropagation`, `part_segmentation/models/pointnet2_utils.py`
l.286-311) interpolates the patch features to every point from the 3 nearest centres (inverse squared
distance), concatenates them after the point's xyz and maps them through conv-bn-relu layers
(1155 -> 1536 -> 1024); the head is conv-bn-relu 512, dropout 0.5, conv-bn-relu 256, conv -> classes
(`pt.py` l.220-225, l.341-344). Every Linear of the head starts trunc-normal(0.02), as the official
`_init_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from act3d.models.layers import PointwiseMLP, pool_tokens, trunc_normal_init
from act3d.models.student import StudentEncoder
from act3d.ops.grouping import PatchConfig
from act3d.ops.indexing import gather_points
from act3d.ops.knn import knn

# the official widths: propagation (4 x 384, 1024), head (512, 256)
PROPAGATION = (1536, 1024)
HIDDEN = (512, 256)


@dataclass
class SegmenterHead:
    """A `PointSegmenter`'s head (a checkpoint's `arch["head"]`): classes per point, object categories
    (part segmentation; 0 for none), per-point inputs beyond xyz (colour: 3), and the layer widths."""

    num_classes: int
    num_categories: int = 0
    point_extra: int = 0
    propagation: list[int] = field(default_factory=lambda: list(PROPAGATION))
    hidden: list[int] = field(default_factory=lambda: list(HIDDEN))  # the head's two hidden layers


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
    """`(B, N, 3)` clouds (+ per-point extras such as colour, + an object category) -> patches (`patching`)
    -> student encoder -> `(B, N, num_classes)` logits."""

    def __init__(self, encoder: StudentEncoder, cfg: SegmenterHead, patching: PatchConfig):
        super().__init__()
        num_categories, propagation, hidden = cfg.num_categories, cfg.propagation, cfg.hidden
        self.encoder, self.num_categories, self.patching = encoder, num_categories, patching
        self.layers = feature_layers(encoder.cfg.depth)
        feat = encoder.cfg.width * len(self.layers)
        self.category_embed = (
            nn.Sequential(nn.Linear(num_categories, 64, bias=False), nn.BatchNorm1d(64), nn.LeakyReLU(0.2))
            if num_categories
            else None
        )
        global_dim = 2 * feat + (64 if num_categories else 0)
        self.propagate = PointwiseMLP(3 + feat + cfg.point_extra, *propagation, activate_last=True)
        self.head = nn.Sequential(
            PointwiseMLP(propagation[-1] + global_dim, hidden[0], activate_last=True),
            nn.Dropout(0.5),
            PointwiseMLP(hidden[0], hidden[1], activate_last=True),
            nn.Linear(hidden[1], cfg.num_classes),
        )
        for module in (self.category_embed, self.propagate, self.head):
            if module is not None:
                module.apply(trunc_normal_init)

    def forward(
        self, points: torch.Tensor, extra: torch.Tensor | None = None, category: torch.Tensor | None = None
    ) -> torch.Tensor:
        patches = self.patching.group(points)
        layers = self.encoder(patches.neighborhood, patches.center, return_layers=self.layers, with_cls=False)
        tokens = torch.cat(layers, dim=-1)  # (B, G, feat)
        glob = [pool_tokens(tokens, "max+mean")]
        if self.category_embed is not None:
            one_hot = nn.functional.one_hot(category, self.num_categories).float()
            glob.append(self.category_embed(one_hot))
        glob = torch.cat(glob, dim=-1)
        per_point = [points, interpolate_to_points(points, patches.center, tokens)]
        if extra is not None:
            per_point.append(extra)
        x = self.propagate(torch.cat(per_point, dim=-1))
        x = torch.cat([x, glob.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)
        return self.head(x)
