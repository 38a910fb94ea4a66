"""Ball query as the PointNet++ CUDA kernel computes it (facebookresearch/3detr @a5d1aad,
`third_party/pointnet2/_ext_src/src/ball_query_gpu.cu` l.11-44), in plain PyTorch on any device.

For each centre, the first `nsample` points in index order whose squared distance, computed in float32 as
`dx*dx + dy*dy + dz*dz` from the coordinate differences (not from norms and a dot product, whose rounding
moves points across the sphere), is strictly below `radius*radius` (float32); the slots left are filled
with the first point found, and a centre with none keeps index 0 everywhere. (The kernel as nvcc compiles it
may fuse the sum into multiply-adds; points within an ulp of the sphere can then fall the other way.)
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from act3d.ops._checks import check_cloud
from act3d.ops.float32 import in_float32

TREE_MIN_POINTS = 4096  # CPU clouds this large take their candidates from a k-d tree


@in_float32
def ball_query(
    points: torch.Tensor, centers: torch.Tensor, radius: float, nsample: int, chunk: int = 256
) -> torch.Tensor:
    """`points (B, N, 3)`, `centers (B, M, 3)` -> `(B, M, nsample)` int64 indices into `points`. CPU clouds
    of `TREE_MIN_POINTS` or more: candidates from a k-d tree, then the same float32 test (`_tree_ball_query`);
    else dense distances, `chunk` centres at a time (`_dense_ball_query`). Both equal the kernel's loop."""
    check_cloud(points)
    check_cloud(centers, "centers")
    points, centers = points.detach().float(), centers.detach().float()
    if points.device.type == "cpu" and points.shape[1] >= TREE_MIN_POINTS:
        return _tree_ball_query(points, centers, radius, nsample)
    return _dense_ball_query(points, centers, radius, nsample, chunk)


def _radius2(radius: float) -> torch.Tensor:
    """`radius * radius` in float32, as the kernel squares its float radius."""
    return torch.tensor(radius, dtype=torch.float32) * torch.tensor(radius, dtype=torch.float32)


def _dense_ball_query(
    points: torch.Tensor, centers: torch.Tensor, radius: float, nsample: int, chunk: int
) -> torch.Tensor:
    """Every centre against every point, `(B, chunk, N)` float32 distances at a time."""
    r2 = _radius2(radius)
    n = points.shape[1]
    ks = torch.arange(1, nsample + 1, device=points.device)
    out = []
    for c in centers.split(chunk, dim=1):
        diff = c[:, :, None, :] - points[:, None, :, :]  # (B, m, N, 3)
        d2 = diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1] + diff[..., 2] * diff[..., 2]
        rank = (d2 < r2.to(d2.device)).cumsum(-1)  # (B, m, N): how many found up to each index
        # the k-th point found is the first index where the count reaches k
        found = torch.searchsorted(rank, ks.expand(*rank.shape[:2], nsample).contiguous())  # N where none
        first = torch.where(found[..., :1] < n, found[..., :1], torch.zeros_like(found[..., :1]))
        out.append(torch.where(found < n, found, first))
    return torch.cat(out, dim=1)


def _tree_ball_query(
    points: torch.Tensor, centers: torch.Tensor, radius: float, nsample: int
) -> torch.Tensor:
    """Per cloud, a k-d tree gives each centre the points within a slightly larger radius, in index order;
    the kernel's float32 test then keeps the first `nsample` strictly inside."""
    r2 = _radius2(radius).numpy()
    p, c = points.numpy(), centers.numpy()
    out = np.zeros((c.shape[0], c.shape[1], nsample), dtype=np.int64)
    for b in range(p.shape[0]):
        found = cKDTree(p[b]).query_ball_point(c[b], radius * (1 + 1e-3) + 1e-6, return_sorted=True)
        for j, candidates in enumerate(found):
            cand = np.asarray(candidates, dtype=np.int64)
            dx, dy, dz = (c[b, j, a] - p[b, cand, a] for a in range(3))
            inside = cand[dx * dx + dy * dy + dz * dz < r2][:nsample]
            if len(inside):
                out[b, j, :] = inside[0]
                out[b, j, : len(inside)] = inside
    return torch.from_numpy(out).to(points.device)


def ball_query_naive(
    points: torch.Tensor, centers: torch.Tensor, radius: float, nsample: int
) -> torch.Tensor:
    """The kernel's loop, centre by centre and point by point (for tests)."""
    r2 = torch.tensor(radius, dtype=torch.float32) * torch.tensor(radius, dtype=torch.float32)
    b, m = centers.shape[:2]
    idx = torch.zeros(b, m, nsample, dtype=torch.int64)
    for i in range(b):
        for j in range(m):
            cnt = 0
            for k in range(points.shape[1]):
                if cnt == nsample:
                    break
                dx, dy, dz = (centers[i, j, a] - points[i, k, a] for a in range(3))
                if dx * dx + dy * dy + dz * dz < r2:
                    if cnt == 0:
                        idx[i, j, :] = k
                    idx[i, j, cnt] = k
                    cnt += 1
    return idx
