"""Input validation shared by the point ops: clear `InputError`s (one line on the command line), not garbage."""

from __future__ import annotations

import torch

from act3d.errors import InputError


def check_cloud(points: torch.Tensor, name: str = "points", dim: int | None = 3) -> None:
    """Raise `InputError` unless `points` is a non-empty `(B, N, dim)` float tensor, finite (checked on CPU
    tensors that are data, not predictions being trained)."""
    if not isinstance(points, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(points).__name__}")
    if points.dim() != 3:
        raise InputError(f"{name} must have shape (B, N, D), got {tuple(points.shape)}")
    if dim is not None and points.shape[-1] != dim:
        raise InputError(f"{name} must have last dimension {dim}, got shape {tuple(points.shape)}")
    if not points.is_floating_point():
        raise InputError(f"{name} must be a floating-point tensor, got {points.dtype}")
    if points.shape[0] == 0 or points.shape[1] == 0:
        raise InputError(f"{name} is empty: shape {tuple(points.shape)}")
    # Finiteness needs the answer on the host: on a GPU that would stall every call in a training step, so it
    # is checked on CPU tensors only (data readers refuse non-finite clouds). A tensor on the autograd tape
    # is a prediction of a model in training: whether it stays finite is the training loop's NaN guard's to
    # judge, on every device alike, so only data is checked here.
    if not points.is_cuda and not points.requires_grad and not bool(torch.isfinite(points).all()):
        bad = int((~torch.isfinite(points)).any(-1).sum())
        raise InputError(f"{name} has {bad} point(s) with non-finite (NaN/inf) coordinates")


def check_count(requested: int, available: int, what: str) -> None:
    """Raise `InputError` unless `1 <= requested <= available`."""
    if requested < 1:
        raise InputError(f"{what} must be >= 1, got {requested}")
    if requested > available:
        raise InputError(f"cannot take {what}={requested} from only {available} points")
