"""Batched gather helpers: pick rows of per-cloud tensors with per-cloud indices."""

from __future__ import annotations

import torch

from act3d.errors import InputError


def gather_points(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick rows of `values` per batch element.

    Args:
        values: `(B, N, C)` per-point values.
        index: `(B, ...)` integer indices into N (any trailing shape).

    Returns:
        `(B, ..., C)` with `out[b, i..., :] = values[b, index[b, i...], :]`.
    """
    if values.dim() != 3:
        raise InputError(f"values must have shape (B, N, C), got {tuple(values.shape)}")
    if index.shape[0] != values.shape[0]:
        raise InputError(f"batch sizes differ: values {values.shape[0]}, index {index.shape[0]}")
    batch, channels = values.shape[0], values.shape[-1]
    flat = index.reshape(batch, -1, 1).expand(-1, -1, channels)
    return values.gather(1, flat).reshape(*index.shape, channels)


def gather_points_naive(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Reference twin of `gather_points`: explicit per-batch advanced indexing."""
    return torch.stack([values[b][index[b]] for b in range(values.shape[0])])
