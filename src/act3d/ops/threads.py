"""The thread pool the CPU point ops share out clouds over (work that releases the GIL: Numba's FPS loop,
SciPy's k-d trees)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def thread_pool(workers: int) -> ThreadPoolExecutor:
    """A pool of `workers` threads for this process (a forked data-loader worker gets its own: the parent's
    threads do not survive the fork)."""
    key = (os.getpid(), workers)
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="act3d-ops")
    return _pools[key]


def for_each_cloud(run: Callable[[int], None], clouds: int, threads: int) -> None:
    """`run(b)` for every cloud b, over up to `threads` threads (in this thread where one suffices)."""
    workers = min(clouds, threads)
    if workers <= 1:
        for b in range(clouds):
            run(b)
    else:
        list(thread_pool(workers).map(run, range(clouds)))
