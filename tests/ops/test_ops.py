import importlib

import pytest
import torch

from act3d.ops import (
    chamfer_distance,
    chamfer_distance_naive,
    farthest_point_sampling,
    farthest_point_sampling_naive,
    gather_points,
    gather_points_naive,
    group_patches,
    group_patches_naive,
    knn,
    knn_naive,
)

SIZES = [(1, 40, 7), (3, 257, 32), (2, 1024, 64)]


def cloud(b: int, n: int, device: str, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, 3, generator=g, dtype=dtype).to(device)


@pytest.mark.parametrize("b,n,s", SIZES)
def test_fps_matches_reference(b, n, s, device):
    # float64 so that rounding never flips a near-tie between the two implementations
    points = cloud(b, n, device)
    assert torch.equal(farthest_point_sampling(points, s), farthest_point_sampling_naive(points, s))


def test_fps_random_start_is_seeded_and_covers_well():
    points = cloud(2, 300, "cpu", torch.float32)
    a = farthest_point_sampling(points, 20, random_start=True, generator=torch.Generator().manual_seed(1))
    b = farthest_point_sampling(points, 20, random_start=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    ref = farthest_point_sampling_naive(
        points, 20, random_start=True, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(a[:, 0], ref[:, 0])
    assert all(len(set(row.tolist())) == 20 for row in a)


def test_fps_float32_selection_is_farthest_first():
    points = cloud(2, 500, "cpu", torch.float32)
    idx = farthest_point_sampling(points, 30)
    # each pick is (up to float rounding) the farthest from the previous picks
    for b in range(2):
        chosen = points[b, idx[b]]
        for i in range(1, 30):
            d = torch.cdist(points[b], chosen[:i]).min(dim=1).values
            assert d[idx[b, i]] >= d.max() - 1e-5


@pytest.mark.parametrize("b,n,s", SIZES)
def test_knn_matches_reference(b, n, s, device):
    ref_pts = cloud(b, n, device)
    query = cloud(b, s, device, seed=1)
    k = min(16, n)
    d_fast, i_fast = knn(query, ref_pts, k)
    d_ref, i_ref = knn_naive(query, ref_pts, k)
    torch.testing.assert_close(d_fast, d_ref)
    assert torch.equal(i_fast, i_ref)  # random float64 data: no ties


def test_knn_float32_distances_agree():
    ref_pts = cloud(4, 2048, "cpu", torch.float32)
    query = ref_pts[:, :128]
    d_fast, _ = knn(query, ref_pts, 32)
    d_ref, _ = knn_naive(query, ref_pts, 32)
    torch.testing.assert_close(d_fast, d_ref, atol=1e-6, rtol=1e-5)
    assert torch.all(d_fast[..., 0] == 0)  # a query that is a reference point finds itself first


def test_gather_matches_reference(device):
    values = torch.randn(3, 50, 5, device=device)
    index = torch.randint(50, (3, 7, 4), device=device)
    out = gather_points(values, index)
    assert out.shape == (3, 7, 4, 5)
    assert torch.equal(out, gather_points_naive(values, index))


@pytest.mark.parametrize("b,n,g,k", [(2, 128, 8, 16), (3, 1024, 64, 32)])
def test_grouping_matches_reference(b, n, g, k, device):
    points = cloud(b, n, device)
    fast, ref = group_patches(points, g, k), group_patches_naive(points, g, k)
    assert fast.neighborhood.shape == (b, g, k, 3) and fast.center.shape == (b, g, 3)
    for a, r in zip(fast, ref):
        assert torch.equal(a, r)


def test_grouping_is_relative_to_centre():
    points = cloud(2, 200, "cpu", torch.float32)
    patches = group_patches(points, 10, 8)
    # the centre is its own nearest neighbour, so every patch starts at the origin
    assert torch.all(patches.neighborhood[:, :, 0] == 0)
    rebuilt = patches.neighborhood + patches.center.unsqueeze(2)
    torch.testing.assert_close(rebuilt, gather_points(points, patches.neighbor_idx))


@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("n,m", [(17, 23), (300, 200)])
def test_chamfer_matches_reference(norm, n, m, device):
    x, y = cloud(2, n, device), cloud(2, m, device, seed=3)
    torch.testing.assert_close(chamfer_distance(x, y, norm), chamfer_distance_naive(x, y, norm))


def test_chamfer_known_values():
    x = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]])
    y = torch.tensor([[[0.0, 0, 0], [0, 2, 0]]])
    # x->y: 0, 1 (sq 0, 1); y->x: 0, 2 (sq 0, 4)
    torch.testing.assert_close(chamfer_distance(x, y, "l2"), torch.tensor([0.5 + 2.0]))
    torch.testing.assert_close(chamfer_distance(x, y, "l1"), torch.tensor([(0.5 + 1.0) / 2]))
    assert chamfer_distance(x, x, "l2").item() == 0


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_chamfer_gradcheck(norm):
    x = cloud(2, 6, "cpu", seed=4).requires_grad_()
    y = cloud(2, 5, "cpu", seed=5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b, norm), (x, y))


def test_chamfer_l1_grad_finite_on_identical_clouds():
    x = cloud(1, 10, "cpu").requires_grad_()
    chamfer_distance(x, x.detach().clone(), "l1").sum().backward()
    assert torch.isfinite(x.grad).all()


BAD_INPUTS = [
    (torch.randn(10, 3), "shape \\(B, N, D\\)"),
    (torch.randn(2, 10, 2), "last dimension 3"),
    (torch.randn(2, 0, 3), "empty"),
    (
        torch.tensor([[[0.0, 0, 0], [float("nan"), 0, 0], [1, 1, float("inf")]]]),
        "2 point\\(s\\) with non-finite",
    ),
    (torch.zeros(1, 5, 3, dtype=torch.long), "floating-point"),
    ([[0.0, 0.0, 0.0]], "must be a torch.Tensor"),
]


@pytest.mark.parametrize("bad,message", BAD_INPUTS)
def test_validation_errors(bad, message):
    good = torch.randn(1, 16, 3)
    with pytest.raises(ValueError, match=message):
        farthest_point_sampling(bad, 1)
    with pytest.raises(ValueError, match=message):
        group_patches(bad, 1, 1)
    with pytest.raises(ValueError, match=message):
        chamfer_distance(bad, good)
    if not isinstance(bad, torch.Tensor) or bad.dim() != 3 or bad.shape[-1] != 2:
        with pytest.raises(ValueError, match=message):
            knn(bad, good, 1)


def test_count_errors():
    points = torch.randn(2, 16, 3)
    with pytest.raises(ValueError, match="num_samples=17 from only 16"):
        farthest_point_sampling(points, 17)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        farthest_point_sampling(points, 0)
    with pytest.raises(ValueError, match="k=20 from only 16"):
        knn(points, points, 20)
    with pytest.raises(ValueError, match="group_size=32 from only 16"):
        group_patches(points, 4, 32)
    with pytest.raises(ValueError, match="batch sizes differ"):
        knn(points, torch.randn(3, 16, 3), 2)
    with pytest.raises(ValueError, match="last dimension 3"):
        knn(points, torch.randn(2, 16, 4), 2)
    with pytest.raises(ValueError, match="norm must be"):
        chamfer_distance(points, points, "l3")


@pytest.mark.parametrize("n,k,batch", [(2048, 32, 5), (4096, 1, 2), (4096, 32, 2), (8192, 32, 3)])
def test_knn_tree_and_matmul_paths_find_the_same_neighbours(n, k, batch, monkeypatch):
    """CPU clouds from `TREE_MIN_POINTS` on go through SciPy's k-d trees, the clouds shared out over threads;
    the blocked matmul gives the same neighbours in the same order (float32 clouds, the training dtype; the
    naive twin checks both)."""
    knn_module = importlib.import_module("act3d.ops.knn")  # the package exports the function as `knn`

    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # so that the trees are shared out over a pool
    ref_pts = cloud(batch, n, "cpu", torch.float32)
    query = cloud(batch, 64, "cpu", torch.float32, seed=1)
    assert n >= knn_module.TREE_MIN_POINTS
    try:
        d_tree, i_tree = knn(query, ref_pts, k)
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setattr(knn_module, "TREE_MIN_POINTS", 10**9)
    d_matmul, i_matmul = knn(query, ref_pts, k)
    d_ref, i_ref = knn_naive(query, ref_pts, k)
    assert torch.equal(i_tree, i_matmul) and torch.equal(d_tree, d_matmul)
    assert torch.equal(i_tree, i_ref)
    torch.testing.assert_close(d_tree, d_ref)
