"""Chamfer distance between point sets, in the two variants of the Point-BERT / ACT family.

- `l2`: mean squared distance to the nearest point, summed over both directions.
- `l1`: mean (unsquared) distance to the nearest point, averaged over both directions.
"""

from __future__ import annotations

from typing import Literal

import torch

from act3d.errors import InputError
from act3d.ops._checks import check_cloud
from act3d.ops.float32 import in_float32
from act3d.ops.indexing import gather_points
from act3d.ops.knn import knn

Norm = Literal["l1", "l2"]
# sqrt has an infinite derivative at 0; a point sitting exactly on its match would poison the grads.
_SQRT_EPS = 1e-12


def _combine(sq_xy: torch.Tensor, sq_yx: torch.Tensor, norm: Norm) -> torch.Tensor:
    if norm == "l2":
        return sq_xy.mean(-1) + sq_yx.mean(-1)
    if norm == "l1":
        return (sq_xy.clamp_min(_SQRT_EPS).sqrt().mean(-1) + sq_yx.clamp_min(_SQRT_EPS).sqrt().mean(-1)) / 2
    raise InputError(f"norm must be 'l1' or 'l2', got {norm!r}")


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    check_cloud(x, "x")
    check_cloud(y, "y")
    if x.shape[0] != y.shape[0]:
        raise InputError(f"batch sizes differ: x {x.shape[0]}, y {y.shape[0]}")


@in_float32
def chamfer_distance(x: torch.Tensor, y: torch.Tensor, norm: Norm = "l2") -> torch.Tensor:
    """Chamfer distance per pair of clouds, differentiable in both inputs.

    Args:
        x: `(B, N, 3)` points.
        y: `(B, M, 3)` points.
        norm: `"l1"` or `"l2"` (see the module docstring).

    Returns:
        `(B,)` distances; take `.mean()` for the usual scalar loss.
    """
    _check_pair(x, y)
    # Matching is a discrete choice with no gradient; distances are recomputed on the matches.
    _, nn_xy = knn(x, y, 1)
    _, nn_yx = knn(y, x, 1)
    sq_xy = ((x - gather_points(y, nn_xy[..., 0])) ** 2).sum(-1)
    sq_yx = ((y - gather_points(x, nn_yx[..., 0])) ** 2).sum(-1)
    return _combine(sq_xy, sq_yx, norm)


def chamfer_distance_naive(x: torch.Tensor, y: torch.Tensor, norm: Norm = "l2") -> torch.Tensor:
    """Reference twin of `chamfer_distance`: the full pairwise distance matrix."""
    _check_pair(x, y)
    sq = ((x.unsqueeze(2) - y.unsqueeze(1)) ** 2).sum(-1)
    return _combine(sq.min(dim=2).values, sq.min(dim=1).values, norm)
