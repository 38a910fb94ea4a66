"""Batched augmentations, applied on the training device to `(B, N, 3)` clouds (y is up)."""

from __future__ import annotations

import math

import torch


def _uniform(
    shape, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    # drawn where the clouds are (a host-drawn tensor copied to a GPU would wait for the GPU every step)
    u = torch.rand(shape, generator=generator, device=generator.device if generator else like.device)
    return (low + (high - low) * u).to(device=like.device, dtype=like.dtype)


def scale_and_translate(
    points: torch.Tensor,
    scale: tuple[float, float] = (2 / 3, 3 / 2),
    shift: float = 0.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-cloud, per-axis random scaling then translation (Point-BERT / Point-MAE ModelNet40 recipe)."""
    b = points.shape[0]
    return points * _uniform((b, 1, 3), *scale, points, generator) + _uniform(
        (b, 1, 3), -shift, shift, points, generator
    )


def scale_and_shift(
    points: torch.Tensor,
    scale: tuple[float, float] = (0.8, 1.25),
    shift: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-cloud isotropic random scaling, then a per-axis shift (PointNet++ `provider`, ACT part segmentation)."""
    b = points.shape[0]
    return points * _uniform((b, 1, 1), *scale, points, generator) + _uniform(
        (b, 1, 3), -shift, shift, points, generator
    )


def rotation_about_up(angles: torch.Tensor) -> torch.Tensor:
    """`(B,)` angles -> `(B, 3, 3)` rotations about the y axis."""
    c, s = angles.cos(), angles.sin()
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, zero, s, zero, one, zero, -s, zero, c], dim=-1).reshape(-1, 3, 3)


def rotate_about_up(
    points: torch.Tensor, max_angle: float = math.pi, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random rotation about the up axis by an angle in `[-max_angle, max_angle]` (ScanObjectNN recipe)."""
    angles = _uniform((points.shape[0],), -max_angle, max_angle, points, generator)
    return points @ rotation_about_up(angles).transpose(1, 2)


AUGMENTATIONS = {
    "none": lambda p, g: p,
    "scale_translate": lambda p, g: scale_and_translate(p, generator=g),
    "rotate": lambda p, g: rotate_about_up(p, generator=g),
    "scale_translate_rotate": lambda p, g: rotate_about_up(scale_and_translate(p, generator=g), generator=g),
}
