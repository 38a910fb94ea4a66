"""Farthest point sampling (FPS).

Qi et al., "PointNet++", NeurIPS 2017: pick a start point, then repeatedly the point farthest from
everything picked so far. Used by ACT (and Point-BERT / Point-MAE) to choose patch centres.

Two rules (`FpsRule`): `act3d`, every point eligible and the first of equal maxima chosen (as
`torch.argmax`); `pointnet2`, what the official code's CUDA kernel does (pointnet2_ops
`furthest_point_sampling_kernel`, sampling_gpu.cu l.66-165, and sampling.cpp l.74-76 at Pointnet2_PyTorch
b5ceb6d): a point with x² + y² + z² <= 1e-3 is never chosen after the first, running distances start at
1e10, and equal maxima go to the thread order of its block reduction, so that once every eligible point is
taken (2048 of 2048 points) the remaining slots repeat one point, point 0 where it is eligible.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import math
from typing import Literal

import torch

from act3d.ops._checks import check_cloud, check_count
from act3d.ops.float32 import in_float32

log = logging.getLogger(__name__)
# the Triton kernel keeps a cloud in registers (x, y, z and the running distance): up to 16k points
TRITON_MAX_POINTS = 16384
# the compiled fast paths, each tested index for index against the eager loop: module `ops.fps_<key>`
_FAST_PATHS = {"triton": "the Triton FPS kernel", "numba": "the Numba FPS loop"}
_failed_paths: set[str] = set()

FpsRule = Literal["act3d", "pointnet2"]
POINTNET2_SKIP = 1e-3  # sampling_gpu.cu l.95-96: `if (mag <= 1e-3) continue;`
POINTNET2_START = 1e10  # sampling.cpp l.74-76: the running distances' initial value


def _start_indices(
    points: torch.Tensor, random_start: bool, generator: torch.Generator | None
) -> torch.Tensor:
    batch, num_points = points.shape[:2]
    if not random_start:
        return torch.zeros(batch, dtype=torch.long, device=points.device)
    gen_device = generator.device if generator is not None else points.device  # no host-to-GPU copy
    start = torch.randint(num_points, (batch,), generator=generator, device=gen_device)
    return start.to(points.device)


def _fast_path(
    backend: str, points: torch.Tensor, num_samples: int, start: torch.Tensor, nearest: torch.Tensor | None
) -> torch.Tensor | None:
    """`ops.fps_<backend>`'s answer, or None where the backend's package is missing or the path failed once
    in this process (a compiler, driver, NumPy or CPU it does not fit): then the eager loop runs."""
    if backend in _failed_paths or importlib.util.find_spec(backend) is None:
        return None
    try:
        module = importlib.import_module(f"act3d.ops.fps_{backend}")
        return getattr(module, f"farthest_point_sampling_{backend}")(points, num_samples, start, nearest)
    except Exception as err:
        _failed_paths.add(backend)
        log.warning(
            "%s failed (%s: %s); using the PyTorch loop", _FAST_PATHS[backend], type(err).__name__, err
        )
        return None


@in_float32
def farthest_point_sampling(
    points: torch.Tensor,
    num_samples: int,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    rule: FpsRule = "act3d",
) -> torch.Tensor:
    """Sample `num_samples` well-spread points from each cloud.

    Args:
        points: `(B, N, 3)` clouds.
        num_samples: S, number of points to keep (`1 <= S <= N`).
        random_start: start from a random point instead of index 0 (the deterministic default).
        generator: RNG for the random start.
        rule: `act3d` or `pointnet2` (the official kernel's skips and ties; see the module docstring).

    Returns:
        `(B, S)` long indices into N, in selection order.

    Every path returns the same indices as `farthest_point_sampling_eager`, the reference: on CUDA tensors
    (N <= TRITON_MAX_POINTS) one Triton kernel runs the whole loop (`ops.fps_triton`); on float32/float64 CPU
    tensors, a Numba-compiled loop (`ops.fps_numba`); elsewhere, or where those cannot run, the eager loop.
    """
    check_cloud(points)
    batch, num_points, _ = points.shape
    check_count(num_samples, num_points, "num_samples")
    start = _start_indices(points, random_start, generator)
    if rule == "pointnet2":
        # the kernel's rule as the act3d loop on reordered points: ineligible points start (and stay) at -1,
        # the others at 1e10, and in the kernel's tie order the first of equal maxima is the kernel's choice
        order = pointnet2_tie_order(num_points).to(points.device)
        reordered = points[:, order]
        position = torch.empty_like(order)
        position[order] = torch.arange(num_points, device=points.device)
        return order[_select(reordered, num_samples, position[start], pointnet2_start_distances(reordered))]
    return _select(points, num_samples, start, None)


def _select(
    points: torch.Tensor, num_samples: int, start: torch.Tensor, nearest: torch.Tensor | None
) -> torch.Tensor:
    """The fastest path that runs here (see `farthest_point_sampling`); `nearest`: the running distances'
    start `(B, N)`, inf where None."""
    selected = None
    if points.is_cuda and points.shape[1] <= TRITON_MAX_POINTS:
        selected = _fast_path("triton", points, num_samples, start, nearest)
    elif points.device.type == "cpu" and points.dtype in (torch.float32, torch.float64):
        selected = _fast_path("numba", points, num_samples, start, nearest)
    return (
        farthest_point_sampling_eager(points, num_samples, start, nearest) if selected is None else selected
    )


@functools.lru_cache(maxsize=16)  # one per cloud size, computed once: grouping calls it every batch
def pointnet2_tie_order(num_points: int) -> torch.Tensor:
    """The point indices `(N,)` (a cached CPU tensor: read it, do not modify it) in the order the official
    kernel prefers them among equal maxima. Point k
    is read by thread `k % T` of a block of T = opt_n_threads(N) threads (cuda_utils.h l.15-19: the largest
    power of two <= N, at most 512); each thread keeps the first of its equal maxima (the lowest k), and the
    reduction tree (`__update`, sampling_gpu.cu l.59-65), which keeps the lower thread on a tie and merges
    threads T/2 apart first and adjacent ones last, prefers the thread whose bit-reversed id is lowest."""
    threads = max(min(1 << int(math.log(num_points) / math.log(2.0)), 512), 1)
    bits = threads.bit_length() - 1
    k = torch.arange(num_points)
    thread = k % threads
    reversed_thread = torch.zeros_like(thread)
    for b in range(bits):
        reversed_thread |= ((thread >> b) & 1) << (bits - 1 - b)
    return torch.argsort(reversed_thread * num_points + k)


def pointnet2_start_distances(points: torch.Tensor) -> torch.Tensor:
    """The running distances the official kernel starts from `(B, N)`: 1e10, and -1 (never the farthest)
    for the points it skips, x² + y² + z² <= 1e-3 (summed as the distances are, with fused multiply-adds)."""
    x, y, z = points.detach().permute(2, 0, 1)
    magnitude = (x * x).addcmul_(y, y).addcmul_(z, z)
    start = torch.full_like(magnitude, POINTNET2_START)
    return start.masked_fill_(magnitude <= POINTNET2_SKIP, -1.0)


def farthest_point_sampling_eager(
    points: torch.Tensor, num_samples: int, start: torch.Tensor, nearest: torch.Tensor | None = None
) -> torch.Tensor:
    """The reference loop, on any device and dtype: `(B, N, 3)` clouds and `(B,)` long start indices ->
    `(B, num_samples)` long indices in selection order (the inputs checked by `farthest_point_sampling`).
    `nearest`: where the running distances start `(B, N)` (inf where None; -1 keeps a point unchosen)."""
    batch, num_points, _ = points.shape
    # One contiguous (B, N) plane per coordinate; each step is a handful of fused in-place passes over
    # them (sub, square, two addcmul, minimum, argmax), which keeps an eager loop fast on CPU and GPU.
    x, y, z = points.detach().permute(2, 0, 1).contiguous()
    if nearest is None:
        nearest = torch.full((batch, num_points), float("inf"), dtype=points.dtype, device=points.device)
    else:
        nearest = nearest.to(points.dtype).clone()
    dist, tmp = torch.empty_like(nearest), torch.empty_like(nearest)
    selected = torch.empty(batch, num_samples, dtype=torch.long, device=points.device)
    farthest = start.unsqueeze(1)
    for i in range(num_samples):
        selected[:, i : i + 1] = farthest
        torch.sub(x, x.gather(1, farthest), out=dist).square_()
        torch.sub(y, y.gather(1, farthest), out=tmp)
        dist.addcmul_(tmp, tmp)
        torch.sub(z, z.gather(1, farthest), out=tmp)
        dist.addcmul_(tmp, tmp)
        torch.minimum(nearest, dist, out=nearest)
        farthest = nearest.argmax(dim=1, keepdim=True)
    return selected


def farthest_point_sampling_naive(
    points: torch.Tensor,
    num_samples: int,
    random_start: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Reference twin of `farthest_point_sampling`: one cloud and one sample at a time."""
    check_cloud(points)
    check_count(num_samples, points.shape[1], "num_samples")
    starts = _start_indices(points, random_start, generator)
    out = []
    for cloud, start in zip(points, starts):
        chosen = [int(start)]
        nearest = ((cloud - cloud[chosen[0]]) ** 2).sum(-1)
        while len(chosen) < num_samples:
            nxt = int(nearest.argmax())
            chosen.append(nxt)
            nearest = torch.minimum(nearest, ((cloud - cloud[nxt]) ** 2).sum(-1))
        out.append(torch.tensor(chosen, dtype=torch.long, device=points.device))
    return torch.stack(out)
