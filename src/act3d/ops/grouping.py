"""Point patches: FPS centres plus their kNN neighbourhoods, the tokenizer input of ACT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from act3d.errors import require
from act3d.ops._checks import check_cloud, check_count
from act3d.ops.float32 import in_float32
from act3d.ops.fps import FpsRule, farthest_point_sampling, farthest_point_sampling_naive
from act3d.ops.indexing import gather_points, gather_points_naive
from act3d.ops.knn import knn, knn_naive


class Patches(NamedTuple):
    """A cloud cut into G patches of K points each."""

    neighborhood: torch.Tensor  # (B, G, K, 3) patch points relative to their centre
    center: torch.Tensor  # (B, G, 3) patch centres (FPS points)
    center_idx: torch.Tensor  # (B, G) indices of the centres in the cloud
    neighbor_idx: torch.Tensor  # (B, G, K) indices of each patch's points in the cloud


@in_float32
def group_patches(points: torch.Tensor, num_groups: int, group_size: int, fps: FpsRule = "act3d") -> Patches:
    """Cut clouds into `num_groups` patches of `group_size` nearest points around FPS centres.

    Args:
        points: `(B, N, 3)` clouds.
        num_groups: G patches per cloud.
        group_size: K points per patch (the centre itself is its own first neighbour).
        fps: the FPS rule of the centres (`ops.fps`: `act3d`, or the official kernel's `pointnet2`).

    Returns:
        `Patches` with `neighborhood (B, G, K, 3)` expressed relative to `center (B, G, 3)`.
    """
    check_cloud(points)
    check_count(group_size, points.shape[1], "group_size")
    center_idx = farthest_point_sampling(points, num_groups, rule=fps)
    center = gather_points(points, center_idx)
    _, neighbor_idx = knn(center, points, group_size)
    neighborhood = gather_points(points, neighbor_idx) - center.unsqueeze(2)
    return Patches(neighborhood, center, center_idx, neighbor_idx)


@dataclass
class PatchConfig:
    """How a model cuts its clouds into patches."""

    num_groups: int = 64  # G centres per cloud
    group_size: int = 32  # K points per patch
    # act3d (every point eligible, the first of equal maxima) or pointnet2 (the official CUDA kernel's skips
    # and ties, `ops.fps`); also the rule of fine-tuning's FPS pool, the same official misc.fps
    fps: FpsRule = "act3d"

    def __post_init__(self) -> None:
        require(self.num_groups >= 1, "num_groups", "an integer >= 1", self.num_groups)
        require(self.group_size >= 1, "group_size", "an integer >= 1", self.group_size)

    def group(self, points: torch.Tensor) -> Patches:
        """`(B, N, 3)` clouds -> their `Patches` (see `group_patches`)."""
        return group_patches(points, self.num_groups, self.group_size, self.fps)


def group_patches_naive(points: torch.Tensor, num_groups: int, group_size: int) -> Patches:
    """Reference twin of `group_patches`, built from the reference twins of each op."""
    check_cloud(points)
    check_count(group_size, points.shape[1], "group_size")
    center_idx = farthest_point_sampling_naive(points, num_groups)
    center = gather_points_naive(points, center_idx)
    _, neighbor_idx = knn_naive(center, points, group_size)
    neighborhood = gather_points_naive(points, neighbor_idx) - center.unsqueeze(2)
    return Patches(neighborhood, center, center_idx, neighbor_idx)
