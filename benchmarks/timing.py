"""The one timing rule the benchmark scripts share, and the training step they time."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch


def median_seconds(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Median wall seconds of `fn` over `repeats` calls, after one warm-up call (CUDA synchronised)."""
    fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def training_step(
    task: Any,
    model: torch.nn.Module,
    batch: Any,
    optimizer: torch.optim.Optimizer,
    autocast: AbstractContextManager,
) -> Callable[[], None]:
    """One full training step of a stage's `task` on `batch`, as a call: forward under `autocast`, backward,
    the optimiser's step."""

    def step() -> None:
        with autocast:
            loss, _ = task.step(model, batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step
