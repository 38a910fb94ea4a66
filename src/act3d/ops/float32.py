"""Geometry in float32 under any autocast.

Mixed precision (`runtime.precision: bf16 | fp16`, `--precision bf16`) runs matmuls in half precision inside
`torch.autocast`, and the point ops sit inside it: a training step groups its clouds in the model's forward.
Half precision moves which points are neighbours (1.8% of the 32-NN slots of 2048-point clouds under bf16)
and every eigenvector of a patch graph's Laplacian, while the official code computes all of them in float32
(knn_cuda, the pointnet2 kernels, PointGST's `get_basis`, DGCNN's `knn`). `in_float32` runs an op as float32
does: autocast off, half-precision tensor arguments promoted. Outside autocast it does nothing, so float32 runs
keep their bits.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])
_DEVICES = ("cpu", "cuda")
_HALF = (torch.float16, torch.bfloat16)


def _promote(value: Any) -> Any:
    return value.float() if isinstance(value, torch.Tensor) and value.dtype in _HALF else value


def in_float32(fn: F) -> F:
    """`fn` computed in float32 whatever autocast is on around it (see the module docstring)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        active = [device for device in _DEVICES if torch.is_autocast_enabled(device)]
        if not active:
            return fn(*args, **kwargs)
        with contextlib.ExitStack() as stack:
            for device in active:
                stack.enter_context(torch.autocast(device, enabled=False))
            return fn(*map(_promote, args), **{k: _promote(v) for k, v in kwargs.items()})

    return run  # type: ignore[return-value]
