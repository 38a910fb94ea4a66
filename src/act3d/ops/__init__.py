"""Point-cloud ops in plain, device-agnostic PyTorch: FPS, kNN, patch grouping, Chamfer, gathers.

Each fast op has a `_naive` twin that is slow but obviously correct; the tests hold them equal.
"""

from act3d.ops.chamfer import chamfer_distance, chamfer_distance_naive
from act3d.ops.fps import farthest_point_sampling, farthest_point_sampling_naive
from act3d.ops.grouping import Patches, group_patches, group_patches_naive
from act3d.ops.indexing import gather_points, gather_points_naive
from act3d.ops.knn import knn, knn_naive

__all__ = [
    "Patches",
    "chamfer_distance",
    "chamfer_distance_naive",
    "farthest_point_sampling",
    "farthest_point_sampling_naive",
    "gather_points",
    "gather_points_naive",
    "group_patches",
    "group_patches_naive",
    "knn",
    "knn_naive",
]
