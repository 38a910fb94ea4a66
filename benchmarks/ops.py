"""Time the point ops against their reference twins (and `fpsample`, when installed). FPS runs its fast
path (Triton on a GPU, Numba on a CPU) and, on the next row, the eager loop that path is held equal to.

    python benchmarks/ops.py [--batch 32] [--repeats 5] [--device cpu|cuda]

Prints a table of milliseconds per call for a batch of clouds at the paper's sizes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from timing import median_seconds  # benchmarks/timing.py

from act3d.ops import (
    chamfer_distance,
    chamfer_distance_naive,
    farthest_point_sampling,
    farthest_point_sampling_naive,
    group_patches,
    knn,
    knn_naive,
)
from act3d.ops.fps import farthest_point_sampling_eager
from act3d.ops.fps import farthest_point_sampling_naive as fps_ref
from act3d.ops.indexing import gather_points

PAPER_SIZES = [(1024, 64), (2048, 128), (8192, 512)]  # (points, centres); 32 neighbours each
GROUP_SIZE = 32


def timed(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Median wall milliseconds of `fn` after one warm-up call."""
    return 1000 * median_seconds(fn, device, repeats)


def reference_grouping(points: torch.Tensor, groups: int) -> None:
    """The baseline the issue names: loop FPS + cdist/topk kNN + gather, no tricks."""
    centres = gather_points(points, fps_ref(points, groups))
    idx = torch.cdist(centres, points).topk(GROUP_SIZE, largest=False).indices
    gather_points(points, idx)


def fpsample_ms(points: torch.Tensor, groups: int, repeats: int) -> float | None:
    try:
        import fpsample
    except ImportError:
        return None
    clouds = points.cpu().numpy()
    return timed(lambda: [fpsample.bucket_fps_kdline_sampling(c, groups, 7) for c in clouds], "cpu", repeats)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reference-repeats", type=int, default=1, help="the naive twins are slow")
    args = parser.parse_args()
    dev, b, r = args.device, args.batch, args.repeats
    print(f"device={dev} batch={b} threads={torch.get_num_threads()} torch={torch.__version__}")
    header = f"{'op':<22}{'N':>6}{'G':>5}{'fast ms':>10}{'ref ms':>10}{'speed-up':>10}{'fpsample ms':>13}"
    print(header)
    print("-" * len(header))
    for n, g in PAPER_SIZES:
        points = torch.rand(b, n, 3, device=dev) * 2 - 1
        centres = points[:, :g].contiguous()
        patch = (
            points[:, :GROUP_SIZE]
            .reshape(b, 1, GROUP_SIZE, 3)
            .expand(b, g, GROUP_SIZE, 3)
            .reshape(-1, GROUP_SIZE, 3)
        )
        recon = patch + 0.01 * torch.randn_like(patch)
        rows = [
            (
                "fps",
                lambda: farthest_point_sampling(points, g),
                lambda: farthest_point_sampling_naive(points, g),
            ),
            (
                "fps, eager loop",
                lambda: farthest_point_sampling_eager(
                    points, g, torch.zeros(b, dtype=torch.long, device=dev)
                ),
                lambda: farthest_point_sampling_naive(points, g),
            ),
            (
                "knn (32)",
                lambda: knn(centres, points, GROUP_SIZE),
                lambda: knn_naive(centres, points, GROUP_SIZE),
            ),
            (
                "group (fps+knn+gather)",
                lambda: group_patches(points, g, GROUP_SIZE),
                lambda: reference_grouping(points, g),
            ),
            (
                "chamfer-l1 patches",
                lambda: chamfer_distance(recon, patch, "l1"),
                lambda: chamfer_distance_naive(recon, patch, "l1"),
            ),
        ]
        fp = None
        for name, fast, ref in rows:
            fast_ms = timed(fast, dev, r)
            ref_ms = timed(ref, dev, args.reference_repeats)
            extra = ""
            if name == "fps" and dev == "cpu":
                fp = fpsample_ms(points, g, r)
                extra = f"{fp:13.1f}" if fp is not None else f"{'n/a':>13}"
            if name.startswith("group") and fp is not None:
                extra = f"{fast_ms / fp:12.1f}x fpsample FPS"
            print(f"{name:<22}{n:>6}{g:>5}{fast_ms:>10.1f}{ref_ms:>10.1f}{ref_ms / fast_ms:>9.1f}x{extra}")


if __name__ == "__main__":
    main()
