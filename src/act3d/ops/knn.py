"""k-nearest neighbours between batched query and reference clouds."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from act3d.errors import InputError
from act3d.ops._checks import check_cloud, check_count
from act3d.ops.float32 import in_float32
from act3d.ops.indexing import gather_points
from act3d.ops.threads import for_each_cloud

# Elements of the (B, rows, N) distance scratch per block of query rows. On a CPU, blocks of 8 MB stay in
# cache between the distance and selection passes; on a GPU, few large blocks mean few kernel launches
# (measured by benchmarks/ops.py, tables in docs/benchmarks.md).
_QUERY_BLOCK_ELEMENTS = {"cpu": 1 << 21, "cuda": 1 << 26}
# Reference points per chunk in the two-level selection of `_smallest`.
_CHUNK = 32
# From this many reference points a CPU uses SciPy's k-d trees (one per cloud, the clouds shared out over
# threads) instead of the blocked distance matmul: below it the matmul is as fast (32 clouds, k = 32, 2
# threads: 1024 points 13.4 / 12.5 ms, 2048 22.9 / 33.6, docs/benchmarks.md). The two paths also order equal
# distances (repeated points) differently, which moves the last bits of a training run, so the demo's and
# pretraining's 1024-point clouds keep the matmul path, as do tiny clouds and GPUs.
TREE_MIN_POINTS = 2048


def _smallest(dist: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the `k` smallest entries of each row of `(B, R, N)`, unordered.

    Two levels instead of one `topk` over N: the k chunks (of `_CHUNK` consecutive entries) with the smallest
    minima hold every one of the k smallest entries (a chunk holding one has a minimum no larger than it,
    and the k chosen chunks' minima are k distinct entries), so the second `topk` looks at k * _CHUNK
    entries instead of N (1,024 instead of 8,192 for the paper's 32 neighbours in 8k points). Equal entries
    may be chosen differently, as by any `topk`.
    """
    b, r, n = dist.shape
    chunks = n // _CHUNK
    if n % _CHUNK or chunks < 2 * k:
        return dist.topk(k, dim=-1, largest=False, sorted=False).indices
    by_chunk = dist.view(b, r, chunks, _CHUNK)
    chosen = by_chunk.amin(-1).topk(k, dim=-1, largest=False, sorted=False).indices  # (B, R, k)
    candidates = by_chunk.gather(2, chosen.unsqueeze(-1).expand(b, r, k, _CHUNK)).view(b, r, k * _CHUNK)
    best = candidates.topk(k, dim=-1, largest=False, sorted=False).indices
    return chosen.gather(2, best // _CHUNK) * _CHUNK + best % _CHUNK


def _tree_neighbours(query: torch.Tensor, reference: torch.Tensor, k: int) -> torch.Tensor:
    """`(B, M, k)` indices of the k nearest reference points, one k-d tree per cloud (CPU tensors). The
    clouds are shared out over threads (SciPy builds and queries without the GIL): a tree's own query
    threads cost more than they give at a few hundred queries (docs/benchmarks.md)."""
    q, r = query.numpy(), reference.numpy()
    idx = np.empty((q.shape[0], q.shape[1], k), dtype=np.int64)

    def run(b: int) -> None:
        found = cKDTree(r[b], balanced_tree=False, compact_nodes=False).query(q[b], k, workers=1)[1]
        idx[b] = found.reshape(q.shape[1], k)

    for_each_cloud(run, q.shape[0], torch.get_num_threads())
    return torch.from_numpy(idx)


@in_float32
def knn(query: torch.Tensor, reference: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` nearest reference points of every query point.

    Args:
        query: `(B, M, D)` query points.
        reference: `(B, N, D)` reference points.
        k: neighbours per query (`1 <= k <= N`).

    Returns:
        `(sq_dists, idx)`, both `(B, M, k)`, sorted by increasing squared Euclidean distance.

    The neighbours come from a k-d tree on CPU clouds of `TREE_MIN_POINTS` or more, else from blocked
    distance matmuls; either way their distances are then computed exactly and sorted (equal distances
    may be ordered differently, as by any sort).
    """
    check_cloud(query, "query", dim=None)
    check_cloud(reference, "reference", dim=query.shape[-1])
    if query.shape[0] != reference.shape[0]:
        raise InputError(f"batch sizes differ: query {query.shape[0]}, reference {reference.shape[0]}")
    batch, num_ref = reference.shape[:2]
    check_count(k, num_ref, "k")
    query, reference = query.detach(), reference.detach()
    if (
        query.device.type == "cpu"
        and num_ref >= TREE_MIN_POINTS
        and query.dtype in (torch.float32, torch.float64)
    ):
        idx = _tree_neighbours(query.contiguous(), reference.contiguous(), k)
    else:
        idx = _matmul_neighbours(query, reference, k)
    # Exact distances of the chosen neighbours, then order them.
    sq_dists = ((gather_points(reference, idx) - query.unsqueeze(2)) ** 2).sum(-1)
    sq_dists, order = sq_dists.sort(dim=-1)
    return sq_dists, idx.gather(-1, order)


def _matmul_neighbours(query: torch.Tensor, reference: torch.Tensor, k: int) -> torch.Tensor:
    """`(B, M, k)` indices of the k nearest reference points by blocked distance matmuls, unordered."""
    batch, num_ref = reference.shape[:2]
    block = _QUERY_BLOCK_ELEMENTS.get(query.device.type, 1 << 23)
    rows = max(1, block // (batch * num_ref))
    ref_t = reference.transpose(1, 2)
    ref_sq = (reference**2).sum(-1).unsqueeze(1)  # (B, 1, N)
    blocks = []
    for q in query.split(rows, dim=1):
        # The matmul form ||r||^2 - 2 q.r (+ ||q||^2, constant per row) is fast but rounds, so it
        # only selects the neighbours; their distances are recomputed exactly in `knn`.
        blocks.append(_smallest(torch.baddbmm(ref_sq, q, ref_t, alpha=-2), k))
    return torch.cat(blocks, dim=1)


def knn_naive(query: torch.Tensor, reference: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference twin of `knn`: every pairwise difference, then a stable full sort."""
    check_cloud(query, "query", dim=None)
    check_cloud(reference, "reference", dim=query.shape[-1])
    check_count(k, reference.shape[1], "k")
    sq = ((query.unsqueeze(2) - reference.unsqueeze(1)) ** 2).sum(-1)
    sq_sorted, idx = sq.sort(dim=-1, stable=True)
    return sq_sorted[..., :k], idx[..., :k]
