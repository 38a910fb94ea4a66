"""The CPU fast path of farthest point sampling: the selection loop compiled by Numba (LLVM, at run time; no
build step), one cloud per call, the clouds shared out over threads that release the GIL.

It computes exactly what the eager loop in `ops.fps` computes, bit for bit: the squared distance as
`fma(dz, dz, fma(dy, dy, dx * dx))` (the eager loop's `addcmul_` is contracted to fused multiply-adds by
PyTorch's CPU kernels, as the official CUDA kernel's sum of squares is by nvcc), the running minimum, and the
first of equal maxima (as `torch.argmax`). The tests hold the two equal index for index.

The argmax is two vectorised passes over the running distances read as integers: non-negative IEEE floats
order as their bit patterns do, and LLVM vectorises an integer max (and a min over indices) where it leaves a
float one scalar. That makes the loop about twice as fast as a fused scalar one.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba.extending import intrinsic

from act3d.ops.threads import for_each_cloud


@intrinsic
def _fma(typingctx, a, b, c):
    """`a * b + c` rounded once (LLVM's `llvm.fma`), as the eager loop's `addcmul_` computes it."""

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _farthest(x, y, z, nearest, bits, cx, cy, cz):  # pragma: no cover - compiled; tested through _fps_cloud
    """Fold the distances to `(cx, cy, cz)` into `nearest` (N,) and return the index of its first maximum;
    `bits` is `nearest` viewed as integers of the same width."""
    n = x.shape[0]
    for j in range(n):
        dx, dy, dz = x[j] - cx, y[j] - cy, z[j] - cz
        d = _fma(dz, dz, _fma(dy, dy, dx * dx))
        nearest[j] = d if d < nearest[j] else nearest[j]
    best = bits[0]
    for j in range(n):
        best = bits[j] if bits[j] > best else best
    first = n
    for j in range(n):
        k = j if bits[j] == best else n
        first = k if k < first else first
    return first


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _fps_cloud(x, y, z, nearest, bits, start, out):  # pragma: no cover - compiled; tested through the op
    """One cloud: coordinates `x, y, z` (N,), scratch `nearest` (N,) set to inf and its integer view `bits`,
    the start index, and `out` (S,) to fill in selection order."""
    farthest = start
    for i in range(out.shape[0]):
        out[i] = farthest
        farthest = _farthest(x, y, z, nearest, bits, x[farthest], y[farthest], z[farthest])


def farthest_point_sampling_numba(
    points: torch.Tensor, num_samples: int, start: torch.Tensor, nearest: torch.Tensor | None = None
) -> torch.Tensor:
    """`(B, N, 3)` float32 or float64 CPU clouds and `(B,)` long start indices -> `(B, num_samples)` long
    indices in selection order, over `torch.get_num_threads()` threads; `nearest` `(B, N)`: where the running
    distances start (inf where None). The caller (`ops.fps`) checks the inputs."""
    batch, num_points, _ = points.shape
    x, y, z = points.detach().permute(2, 0, 1).contiguous().numpy()
    if nearest is None:
        nearest = np.full((batch, num_points), np.inf, dtype=x.dtype)
    else:
        nearest = nearest.detach().to(points.dtype).contiguous().numpy().copy()
    bits = nearest.view(np.int32 if x.dtype == np.float32 else np.int64)
    out = np.empty((batch, num_samples), dtype=np.int64)
    starts = start.tolist()

    def run(b: int) -> None:
        _fps_cloud(x[b], y[b], z[b], nearest[b], bits[b], starts[b], out[b])

    for_each_cloud(run, batch, torch.get_num_threads())
    return torch.from_numpy(out)
