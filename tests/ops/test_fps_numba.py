"""The Numba FPS loop (the CPU fast path) against the eager reference loop, index for index."""

import logging
import multiprocessing

import pytest
import torch

pytest.importorskip("numba")

from act3d.ops import fps
from act3d.ops.fps_numba import farthest_point_sampling_numba


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("b,n,s", [(1, 1, 1), (1, 40, 7), (3, 257, 32), (2, 300, 300), (4, 2048, 128)])
def test_numba_loop_equals_the_eager_loop_from_the_same_start(b, n, s, dtype):
    g = torch.Generator().manual_seed(n)
    points = torch.randn(b, n, 3, generator=g, dtype=dtype) * 10
    start = torch.randint(n, (b,), generator=g)
    got = farthest_point_sampling_numba(points, s, start)
    assert got.dtype == torch.long and got.shape == (b, s)
    assert torch.equal(got, fps.farthest_point_sampling_eager(points, s, start))


def test_numba_loop_breaks_ties_as_the_eager_loop():
    # every point three times over, and a lattice of equal distances: the first of equal maxima wins
    g = torch.Generator().manual_seed(0)
    repeated = torch.randn(2, 100, 3, generator=g).repeat(1, 3, 1)
    lattice = torch.stack(torch.meshgrid(*[torch.arange(6.0)] * 3, indexing="ij"), -1).reshape(1, -1, 3)
    for points, s in [(repeated, 300), (lattice.expand(2, -1, -1), 216)]:
        start = torch.zeros(points.shape[0], dtype=torch.long)
        assert torch.equal(
            farthest_point_sampling_numba(points, s, start),
            fps.farthest_point_sampling_eager(points, s, start),
        )


def test_cpu_float_clouds_take_the_numba_path(monkeypatch):
    calls = []
    real = fps._fast_path
    monkeypatch.setattr(
        fps, "_fast_path", lambda backend, *a: calls.append((backend, a[0].dtype)) or real(backend, *a)
    )
    points = torch.rand(2, 64, 3)
    fps.farthest_point_sampling(points, 8)
    fps.farthest_point_sampling(points.double(), 8)
    fps.farthest_point_sampling(points.half(), 8)  # no Numba kernel for half: the eager loop
    assert calls == [("numba", torch.float32), ("numba", torch.float64)]


def test_a_failing_numba_falls_back_to_the_eager_loop_once(monkeypatch, caplog):
    import act3d.ops.fps_numba as fps_numba

    def broken(*args):
        raise RuntimeError("no LLVM target")

    monkeypatch.setattr(fps_numba, "farthest_point_sampling_numba", broken)
    monkeypatch.setattr(fps, "_failed_paths", set())
    points = torch.rand(3, 50, 3)
    expected = fps.farthest_point_sampling_eager(points, 10, torch.zeros(3, dtype=torch.long))
    with caplog.at_level(logging.WARNING, logger="act3d.ops.fps"):
        assert torch.equal(fps.farthest_point_sampling(points, 10), expected)
        assert torch.equal(fps.farthest_point_sampling(points, 10), expected)
    warnings = [r for r in caplog.records if "Numba FPS loop failed" in r.getMessage()]
    assert len(warnings) == 1 and "no LLVM target" in warnings[0].getMessage()


def _sample_in_child(queue) -> None:
    points = torch.rand(4, 200, 3, generator=torch.Generator().manual_seed(1))
    queue.put(fps.farthest_point_sampling(points, 16).tolist())


def test_a_forked_process_gets_threads_of_its_own():
    # the parent's pool threads do not survive a fork (as into a data-loader worker): the child must not
    # wait on them
    points = torch.rand(4, 200, 3, generator=torch.Generator().manual_seed(1))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # so that the parent's call starts a pool
    try:
        expected = farthest_point_sampling_numba(points, 16, torch.zeros(4, dtype=torch.long)).tolist()
    finally:
        torch.set_num_threads(threads)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_sample_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert queue.get(timeout=5) == expected
