"""Ball query as the PointNet++ CUDA kernel computes it (facebookresearch/3detr @a5d1aad,
`third_party/pointnet2/_ext_src/src/ball_query_gpu.cu` l.11-44), in plain PyTorch on any device.

For each centre, the first `nsample` points in index order whose squared distance, computed in float32 as
`dx*dx + dy*dy + dz*dz` from the coordinate differences (not from norms and a dot product, whose rounding
moves points across the sphere), is strictly below `radius*radius` (float32); the slots left are filled
with the first point found, and a centre with none keeps index 0 everywhere. (The kernel as nvcc compiles it
may fuse the sum into multiply-adds; points within an ulp of the sphere can then fall the other way.)
"""

from __future__ import annotations

import torch

from act3d.ops._checks import check_cloud


def ball_query(
    points: torch.Tensor, centers: torch.Tensor, radius: float, nsample: int, chunk: int = 256
) -> torch.Tensor:
    """`points (B, N, 3)`, `centers (B, M, 3)` -> `(B, M, nsample)` int64 indices into `points`, `chunk`
    centres at a time (each holds a `(B, chunk, N)` distance block)."""
    check_cloud(points)
    check_cloud(centers, "centers")
    r2 = torch.tensor(radius, dtype=torch.float32) * torch.tensor(radius, dtype=torch.float32)
    points, centers = points.float(), centers.float()
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
