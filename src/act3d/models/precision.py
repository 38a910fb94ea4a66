"""The number format of inference (`embed`, `predict`, `eval`, `act3d.load_model`): float32, or bf16 autocast.

- `float32` (the default): bit-reproducible features, the numbers of every table in docs/.
- `bf16`: the Transformer's matmuls in bfloat16 under `torch.autocast`; the geometry (FPS, kNN, grouping,
  Chamfer, PointGST's bases, IDPT's feature kNN: `act3d.ops.float32`) and the pooled features stay float32,
  here as in training under `runtime.precision`. On a CPU that computes bf16 natively, 1.8-2.3x the
  clouds/s of float32 for a paper-size student (1.1-1.5x for the CPU demo's), features about 0.7% apart, the
  same probe accuracies within their intervals (docs/benchmarks.md); on a CPU without it, emulated.
- `auto`: bf16 where the hardware computes it natively (a CUDA GPU that supports it; a CPU with AVX-512 BF16
  or AMX), float32 elsewhere.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from act3d.errors import ConfigError

Precision = Literal["float32", "bf16", "auto"]
PRECISIONS: tuple[str, ...] = ("float32", "bf16", "auto")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX tiles), as PyTorch's oneDNN uses."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(precision: Precision, device: torch.device) -> Literal["float32", "bf16"]:
    """`auto` -> `bf16` where `device` computes bf16 natively, else `float32`; the others as given."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "float32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "float32"


def inference_autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a model's forward runs in under `precision` (nothing for float32)."""
    if resolve_precision(precision, device) == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
