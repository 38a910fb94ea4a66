"""Ball query against the CUDA kernel's loop (ball_query_gpu.cu l.11-44, restated as ball_query_naive)."""

import torch

from act3d.ops.ball_query import ball_query, ball_query_naive


def test_ball_query_equals_the_kernel_loop_index_for_index():
    g = torch.Generator().manual_seed(0)
    points = torch.rand(2, 300, 3, generator=g)
    centers = torch.cat([points[:, :20], torch.full((2, 1, 3), 5.0)], dim=1)  # the last centre finds nothing
    # points on the sphere's edge, where the float32 arithmetic decides
    points[:, 100:110] = (
        centers[:, :1] + torch.tensor([0.2, 0.0, 0.0]) * torch.linspace(0.999, 1.001, 10)[:, None]
    )
    for radius, nsample in ((0.2, 16), (0.05, 8), (0.5, 64)):
        ours, theirs = (
            ball_query(points, centers, radius, nsample, chunk=7),
            ball_query_naive(points, centers, radius, nsample),
        )
        assert torch.equal(ours, theirs), (radius, nsample)
    idx = ball_query(points, centers, 0.05, 8)
    assert torch.equal(idx[:, -1], torch.zeros(2, 8, dtype=torch.int64))  # no neighbour: index 0 everywhere
    j = 3  # a centre with fewer than 8 neighbours: the rest are the first one found
    found = idx[0, j][idx[0, j] != idx[0, j, 0]]
    assert torch.all(idx[0, j, 1 + len(found) :] == idx[0, j, 0]) and torch.all(found.diff() > 0)


def test_the_k_d_tree_path_equals_the_dense_path():
    from act3d.ops.ball_query import TREE_MIN_POINTS, _dense_ball_query, _tree_ball_query

    g = torch.Generator().manual_seed(3)
    points = torch.rand(2, TREE_MIN_POINTS + 500, 3, generator=g) * torch.tensor([3.0, 3.0, 1.0])
    centers = points[:, :300].clone()
    # points on the sphere around the first centre, where the float32 test decides
    points[:, 1000:1040] = (
        centers[:, :1] + torch.tensor([0.0, 0.2, 0.0]) * torch.linspace(0.9999, 1.0001, 40)[:, None]
    )
    centers[:, -1] = 50.0  # far from everything
    for radius, nsample in ((0.2, 64), (0.4, 32), (0.05, 8)):
        dense = _dense_ball_query(points, centers, radius, nsample, chunk=64)
        assert torch.equal(_tree_ball_query(points, centers, radius, nsample), dense), (radius, nsample)
    assert torch.equal(ball_query(points, centers, 0.2, 64), _dense_ball_query(points, centers, 0.2, 64, 64))
