"""Geometry under autocast computes as float32 does (`act3d.ops.float32`): the patches of a training step, the
kNN of IDPT's prompt generator and PointGST's graph bases are the float32 ones, bit for bit, under CPU bf16
autocast with the dispatch a GPU takes (the matmul kNN path). Each test also runs the undecorated op under
the same autocast and checks that it differs, so it would catch the decorator's loss."""

import sys

import pytest
import torch

from act3d.models.peft.idpt import knn_features
from act3d.models.peft.pointgst import spectral_bases
from act3d.ops.chamfer import chamfer_distance
from act3d.ops.fps import farthest_point_sampling
from act3d.ops.grouping import group_patches
from act3d.ops.knn import knn

BF16 = {"device_type": "cpu", "dtype": torch.bfloat16}


def unit_clouds(batch: int = 4, points: int = 2048) -> torch.Tensor:
    """Clouds in the unit ball, as the loaders normalise them."""
    torch.manual_seed(0)
    pts = torch.rand(batch, points, 3) * 2 - 1
    return pts / pts.norm(dim=-1).amax(-1, keepdim=True)[..., None]


@pytest.fixture
def matmul_knn(monkeypatch):
    """The blocked-matmul kNN, which GPUs take at every size (a CPU takes k-d trees from 2048 points)."""
    monkeypatch.setattr(sys.modules["act3d.ops.knn"], "TREE_MIN_POINTS", 10**9)


def test_training_patches_under_bf16_autocast_are_the_float32_patches(matmul_knn):
    points = unit_clouds()
    exact = group_patches(points, 128, 32)
    with torch.autocast(**BF16):
        patches = group_patches(points, 128, 32)
        _, unguarded = knn.__wrapped__(exact.center, points, 32)
    for name in ("center_idx", "neighbor_idx", "center", "neighborhood"):
        assert torch.equal(getattr(patches, name), getattr(exact, name)), name
    assert patches.neighborhood.dtype == torch.float32
    assert (unguarded.sort(-1).values != exact.neighbor_idx.sort(-1).values).float().mean() > 0.01


def test_fps_and_chamfer_under_autocast_take_half_inputs_as_float32():
    points = unit_clouds(2, 512)
    with torch.autocast(**BF16):
        idx = farthest_point_sampling(points.bfloat16(), 64)
        distance = chamfer_distance(points[:, :256].bfloat16(), points[:, 256:])
    assert torch.equal(idx, farthest_point_sampling(points.bfloat16().float(), 64))
    expected = chamfer_distance(points[:, :256].bfloat16().float(), points[:, 256:])
    assert distance.dtype == torch.float32 and torch.equal(distance, expected)


def test_pointgst_bases_under_bf16_autocast_are_the_float32_bases(matmul_knn):
    center = group_patches(unit_clouds(), 128, 32).center
    exact = spectral_bases(center, 32, "official")
    with torch.autocast(**BF16):
        bases = spectral_bases(center, 32, "official")
        unguarded = spectral_bases.__wrapped__(center, 32, "official")
    for name in ("full", "local", "order", "unorder"):
        assert torch.equal(getattr(bases, name), getattr(exact, name)), name
    x, y = unguarded.full.float(), exact.full
    cosine = (x * y).sum(-2).abs() / (x.norm(dim=-2) * y.norm(dim=-2))
    assert (cosine < 0.99).float().mean() > 0.5  # bf16 moves most eigenvectors


def test_idpt_feature_knn_under_autocast_is_the_float32_knn():
    torch.manual_seed(0)
    tokens = torch.randn(4, 64, 128).bfloat16()  # (B, C, N): a transformer's output under autocast
    with torch.autocast(**BF16):
        idx = knn_features(tokens, 20)
        unguarded = knn_features.__wrapped__(tokens, 20)
    assert torch.equal(idx, knn_features(tokens.float(), 20))
    assert not torch.equal(unguarded, idx)


def test_without_autocast_the_ops_are_untouched():
    points = unit_clouds(2, 256)
    a, b = group_patches(points, 16, 8), group_patches.__wrapped__(points, 16, 8)
    assert torch.equal(a.neighbor_idx, b.neighbor_idx) and torch.equal(a.neighborhood, b.neighborhood)
    double = points.double()  # float64 stays float64
    assert group_patches(double, 16, 8).neighborhood.dtype == torch.float64
