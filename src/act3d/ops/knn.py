"""k-nearest neighbours between batched query and reference clouds."""

from __future__ import annotations

import torch

from act3d.ops._checks import check_cloud, check_count
from act3d.ops.indexing import gather_points

# Query rows per distance block: bounds the (B, rows, N) scratch matrix to a few tens of MB.
_QUERY_BLOCK_ELEMENTS = 1 << 23


def knn(query: torch.Tensor, reference: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` nearest reference points of every query point.

    Args:
        query: `(B, M, D)` query points.
        reference: `(B, N, D)` reference points.
        k: neighbours per query (`1 <= k <= N`).

    Returns:
        `(sq_dists, idx)`, both `(B, M, k)`, sorted by increasing squared Euclidean distance.
    """
    check_cloud(query, "query", dim=None)
    check_cloud(reference, "reference", dim=query.shape[-1])
    if query.shape[0] != reference.shape[0]:
        raise ValueError(f"batch sizes differ: query {query.shape[0]}, reference {reference.shape[0]}")
    batch, num_ref = reference.shape[:2]
    check_count(k, num_ref, "k")
    query, reference = query.detach(), reference.detach()
    rows = max(1, _QUERY_BLOCK_ELEMENTS // (batch * num_ref))
    ref_t = reference.transpose(1, 2)
    ref_sq = (reference**2).sum(-1).unsqueeze(1)  # (B, 1, N)
    blocks = []
    for q in query.split(rows, dim=1):
        # The matmul form ||r||^2 - 2 q.r (+ ||q||^2, constant per row) is fast but rounds, so it
        # only selects the neighbours; their distances are recomputed exactly below.
        approx = torch.baddbmm(ref_sq, q, ref_t, alpha=-2)
        blocks.append(approx.topk(k, dim=-1, largest=False, sorted=False).indices)
    idx = torch.cat(blocks, dim=1)
    # Exact distances of the chosen neighbours, then order them.
    sq_dists = ((gather_points(reference, idx) - query.unsqueeze(2)) ** 2).sum(-1)
    sq_dists, order = sq_dists.sort(dim=-1)
    return sq_dists, idx.gather(-1, order)


def knn_naive(query: torch.Tensor, reference: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference twin of `knn`: every pairwise difference, then a stable full sort."""
    check_cloud(query, "query", dim=None)
    check_cloud(reference, "reference", dim=query.shape[-1])
    check_count(k, reference.shape[1], "k")
    sq = ((query.unsqueeze(2) - reference.unsqueeze(1)) ** 2).sum(-1)
    sq_sorted, idx = sq.sort(dim=-1, stable=True)
    return sq_sorted[..., :k], idx[..., :k]
