"""act3d's FPS under the `pointnet2` rule against a reference statement of the official CUDA kernel.

The reference follows pointnet2_ops' `furthest_point_sampling_kernel` (Pointnet2_PyTorch b5ceb6d,
pointnet2_ops_lib/pointnet2_ops/_ext-src/src/sampling_gpu.cu l.66-165; the running distances start at 1e10,
sampling.cpp l.74-76; the block size is opt_n_threads(N), cuda_utils.h l.15-19): T threads each walk the
points k = tid, tid + T, ..., skip those with x² + y² + z² <= 1e-3, fold the distance to the last chosen
point into `temp` and keep their first maximum (best starts at -1, besti at 0); the `__update` tree then
merges threads T/2, T/4, ..., 1 apart, keeping the lower thread on a tie. Coordinates lie on a 1/64 grid, so
every sum of squares is exact in float32 (the kernel's fused multiply-adds cannot round differently) and
equal distances, the case the tie rule decides, are common.
"""

import math

import numpy as np
import pytest
import torch

from act3d.ops import fps


def official_kernel(points: np.ndarray, m: int) -> list[int]:
    """One cloud `(N, 3)` float32 -> the `m` indices the official kernel writes to `idxs`."""
    n = len(points)
    threads = max(min(1 << int(math.log(n) / math.log(2.0)), 512), 1)
    x, y, z = (points[:, c].astype(np.float64) for c in range(3))
    magnitude = x * x + y * y + z * z
    temp = np.full(n, 1e10)
    k = np.arange(n)
    thread = k % threads
    idxs, old = [0], 0
    for _ in range(1, m):
        d = (x - x[old]) ** 2 + (y - y[old]) ** 2 + (z - z[old]) ** 2
        eligible = magnitude > 1e-3  # `if (mag <= 1e-3) continue;`
        temp[eligible] = np.minimum(d[eligible], temp[eligible])
        # every thread: its first maximum (`d2 > best`, strictly), best -1 and besti 0 where it saw none
        dists, dists_i = np.full(threads, -1.0), np.zeros(threads, dtype=np.int64)
        for t in range(threads):
            mine = k[(thread == t) & eligible]
            if len(mine):
                dists[t], dists_i[t] = temp[mine].max(), mine[np.argmax(temp[mine])]
        s = threads // 2
        while s >= 1:  # __update(dists, dists_i, tid, tid + s) for tid < s
            v1, v2, i1, i2 = dists[:s].copy(), dists[s : 2 * s].copy(), dists_i[:s].copy(), dists_i[s : 2 * s]
            dists[:s], dists_i[:s] = np.maximum(v1, v2), np.where(v2 > v1, i2, i1)
            s //= 2
        old = int(dists_i[0])
        idxs.append(old)
    return idxs


def grid_cloud(n: int, seed: int, near_origin: int = 5, origin_first: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = rng.integers(-64, 65, size=(n, 3)) / 64.0
    points[1 : 1 + near_origin] = rng.integers(-1, 2, size=(near_origin, 3)) / 64.0  # |p|² <= 3/4096
    if origin_first:
        points[0] = 0.0
    return points.astype(np.float32)


@pytest.mark.parametrize("path", ["numba", "eager"])
@pytest.mark.parametrize(
    "n, m, seed, origin_first",
    [
        (40, 12, 0, False),
        (300, 300, 1, False),
        (300, 64, 2, True),
        (2048, 2048, 3, False),
        (1000, 1000, 4, True),
    ],
)
def test_the_pointnet2_rule_is_the_official_kernel(n, m, seed, origin_first, path, monkeypatch):
    if path == "eager":
        monkeypatch.setattr(fps, "_failed_paths", {"numba", "triton"})
    clouds = [grid_cloud(n, seed + 10 * b, origin_first=origin_first) for b in range(2)]
    got = fps.farthest_point_sampling(torch.from_numpy(np.stack(clouds)), m, rule="pointnet2")
    for cloud, indices in zip(clouds, got):
        assert indices.tolist() == official_kernel(cloud, m)


def test_the_kernel_never_takes_a_point_near_the_origin_and_repeats_point_0():
    """Issue 30's case: all points sampled (2048 of 2048): the near-origin points are never taken after
    the first, their slots repeat point 0; the act3d rule takes every point once."""
    rng = np.random.default_rng(7)  # distinct grid points: 2039 away from the origin, 9 of the 27 next to it
    far = np.stack(np.meshgrid(*[np.arange(-16, 17)] * 3, indexing="ij"), -1).reshape(-1, 3) / 16.0
    far = far[(far**2).sum(1) > 1e-3]
    near = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3) / 64.0
    cloud = np.concatenate(
        [far[rng.choice(len(far), 2039, replace=False)], near[rng.choice(27, 9, replace=False)]]
    )
    cloud = cloud[rng.permutation(2048)].astype(np.float32)
    first_far = int(np.flatnonzero((cloud**2).sum(1) > 1e-3)[0])
    cloud[[0, first_far]] = cloud[[first_far, 0]]  # an eligible point 0: the one the kernel repeats
    near = np.flatnonzero((cloud.astype(np.float64) ** 2).sum(1) <= 1e-3)
    assert len(near) == 9 and 0 not in near
    official = fps.farthest_point_sampling(torch.from_numpy(cloud)[None], 2048, rule="pointnet2")[0]
    assert not set(near.tolist()) & set(official.tolist())
    assert official[-len(near) :].tolist() == [0] * len(near)
    act3d = fps.farthest_point_sampling(torch.from_numpy(cloud)[None], 2048)[0]
    assert sorted(act3d.tolist()) == list(range(2048))


def test_the_tie_order_is_the_reduction_trees():
    # 8 points, 8 threads: the tree merges threads 4, then 2, then 1 apart, so ties prefer even threads,
    # then multiples of 4: bit-reversed thread order 0, 4, 2, 6, 1, 5, 3, 7
    assert fps.pointnet2_tie_order(8).tolist() == [0, 4, 2, 6, 1, 5, 3, 7]
    # 12 points, 8 threads: thread t also reads point t + 8, which it prefers after its own first point
    assert fps.pointnet2_tie_order(12).tolist() == [0, 8, 4, 2, 10, 6, 1, 9, 5, 3, 11, 7]
