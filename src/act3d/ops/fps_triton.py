"""The GPU fast path of farthest point sampling: one Triton program per cloud, the whole selection loop
inside the kernel (the eager op launches a handful of small kernels per selected point).

Triton ships with the CUDA builds of PyTorch and compiles at run time; `ops.fps.farthest_point_sampling`
uses this kernel for CUDA tensors when Triton can be imported, and the pure-PyTorch loop everywhere else.
The kernel also runs on the CPU under Triton's interpreter (`TRITON_INTERPRET=1`), which is how the tests
hold it equal to the reference without a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _fps_kernel(points_ptr, nearest_ptr, start_ptr, out_ptr, num_points, num_samples, BLOCK: tl.constexpr):
    cloud = tl.program_id(0)
    offsets = tl.arange(0, BLOCK)
    valid = offsets < num_points
    base = points_ptr + cloud * num_points * 3
    x = tl.load(base + offsets * 3 + 0, mask=valid, other=0.0)
    y = tl.load(base + offsets * 3 + 1, mask=valid, other=0.0)
    z = tl.load(base + offsets * 3 + 2, mask=valid, other=0.0)
    # where the running distances start (inf, or the official kernel's values); padding is never the farthest
    nearest = tl.load(nearest_ptr + cloud * num_points + offsets, mask=valid, other=-1.0)
    farthest = tl.load(start_ptr + cloud)
    for i in range(num_samples):
        tl.store(out_ptr + cloud * num_samples + i, farthest)
        dx = x - tl.load(base + farthest * 3 + 0)
        dy = y - tl.load(base + farthest * 3 + 1)
        dz = z - tl.load(base + farthest * 3 + 2)
        nearest = tl.minimum(nearest, tl.where(valid, dx * dx + dy * dy + dz * dz, -1.0))
        farthest = tl.argmax(nearest, axis=0).to(tl.int64)  # the first of equal maxima, as torch.argmax


def farthest_point_sampling_triton(
    points: torch.Tensor, num_samples: int, start: torch.Tensor, nearest: torch.Tensor | None = None
) -> torch.Tensor:
    """`(B, N, 3)` clouds (N <= `ops.fps.TRITON_MAX_POINTS`) and `(B,)` long start indices ->
    `(B, num_samples)` long indices in selection order; `nearest` `(B, N)`: where the running distances
    start (inf where None). The caller (`ops.fps`) checks the inputs."""
    batch, num_points, _ = points.shape
    block = triton.next_power_of_2(num_points)
    out = torch.empty(batch, num_samples, dtype=torch.long, device=points.device)
    if nearest is None:
        nearest = torch.full((batch, num_points), float("inf"), device=points.device)
    _fps_kernel[(batch,)](
        points.detach().float().contiguous(),
        nearest.float().contiguous(),
        start.contiguous(),
        out,
        num_points,
        num_samples,
        BLOCK=block,
        num_warps=min(16, max(4, block // 512)),
    )
    return out
