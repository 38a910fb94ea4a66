"""The Triton FPS kernel (the GPU fast path) against the reference, run on the CPU by Triton's interpreter."""

import subprocess
import sys

import pytest

pytest.importorskip("triton")

SCRIPT = """
import torch
from act3d.ops.fps import farthest_point_sampling
from act3d.ops.fps_triton import farthest_point_sampling_triton

g = torch.Generator().manual_seed(0)
for batch, n, s in [(2, 1000, 64), (3, 1024, 128), (1, 37, 37), (2, 2500, 16)]:
    points = torch.randn(batch, n, 3, generator=g)
    start = torch.randint(n, (batch,), generator=g)
    got = farthest_point_sampling_triton(points, s, start)
    for b in range(batch):
        cloud = points[b]
        # the reference algorithm (farthest_point_sampling_naive) from the same start: index for index
        chosen, nearest = [int(start[b])], ((cloud - cloud[int(start[b])]) ** 2).sum(-1)
        while len(chosen) < s:
            nxt = int(nearest.argmax())
            chosen.append(nxt)
            nearest = torch.minimum(nearest, ((cloud - cloud[nxt]) ** 2).sum(-1))
        assert got[b].tolist() == chosen, (batch, n, s, b)
    zero = torch.zeros(batch, dtype=torch.long)
    assert torch.equal(farthest_point_sampling_triton(points, s, zero), farthest_point_sampling(points, s))
# the pointnet2 rule: reordered points, ineligible ones starting at -1, all sampled (ties and repeats)
from act3d.ops import fps
grid = torch.randint(-64, 65, (2, 300, 3), generator=g) / 64.0
grid[:, 1:6] = torch.randint(-1, 2, (2, 5, 3), generator=g) / 64.0
order = fps.pointnet2_tie_order(300)
reordered, start = grid[:, order], torch.argsort(order)[torch.zeros(2, dtype=torch.long)]
nearest = fps.pointnet2_start_distances(reordered)
assert torch.equal(
    farthest_point_sampling_triton(reordered, 300, start, nearest),
    fps.farthest_point_sampling_eager(reordered, 300, start, nearest),
)
print("ok")
"""


def test_triton_kernel_equals_the_reference_under_the_interpreter():
    env = {"TRITON_INTERPRET": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
