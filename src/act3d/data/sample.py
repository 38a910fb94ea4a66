"""The one sample type every reader returns, and the checks every sample passes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from act3d.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One point cloud with whatever labels its dataset has."""

    points: np.ndarray  # (N, 3) float32
    label: int = -1  # object class, -1 when unlabelled
    colors: np.ndarray | None = None  # (N, 3) in [0, 1]
    point_labels: np.ndarray | None = None  # (N,) part / semantic class per point
    origin: str = ""  # the file (and entry) it came from, for error messages


class CloudSource(Protocol):
    """What a reader returns: an indexable collection of `Sample`s with class names.

    A reader whose official counterpart normalises each sampled subset rather than the stored cloud
    (ShapeNet-55) also sets a class attribute `normalize_subset = True`.
    """

    name: str
    class_names: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


# far beyond any object or room in metres, far below where float32 squares overflow (~1.8e19)
MAX_COORDINATE = 1e6


def check_points(points: np.ndarray, origin: str, nonfinite: str = "error") -> np.ndarray:
    """Validate one cloud's coordinates; returns them as float32 `(N, 3)`.

    `nonfinite`: `"error"` (default) rejects NaN/inf coordinates with their count, `"drop"` removes
    those points with a warning. Coordinates beyond `MAX_COORDINATE` are refused (wrong units or garbage).
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise DataError(f"{origin}: expected points of shape (N, 3+), got {points.shape}")
    if points.shape[0] == 0:
        raise DataError(f"{origin}: the cloud is empty")
    if not np.issubdtype(points.dtype, np.number) or np.issubdtype(points.dtype, np.complexfloating):
        raise DataError(f"{origin}: expected numeric coordinates, got {points.dtype}")
    xyz = points[:, :3].astype(np.float32, copy=False)
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        if nonfinite != "drop":
            raise DataError(f"{origin}: {int(bad.sum())} of {len(xyz)} points have NaN/inf coordinates")
        log.warning("%s: dropping %d points with NaN/inf coordinates", origin, int(bad.sum()))
        xyz = xyz[~bad]
        if len(xyz) == 0:
            raise DataError(f"{origin}: no finite points left")
    largest = float(np.abs(xyz).max())
    if largest > MAX_COORDINATE:
        raise DataError(
            f"{origin}: coordinates reach {largest:.3g}; expected |x| <= {MAX_COORDINATE:.0g} (check the units)"
        )
    return xyz


def check_label(label: int, num_classes: int, origin: str) -> int:
    """An object label must index the class list."""
    if not 0 <= int(label) < num_classes:
        raise DataError(f"{origin}: label {int(label)} is out of range for {num_classes} classes")
    return int(label)


def resample_indices(
    num_points: int, target: int, rng: np.random.Generator, origin: str = "", warn: bool = True
) -> np.ndarray:
    """Indices choosing `target` of `num_points` points: without replacement when possible, else with
    replacement (and a warning, since duplicated points change the patch statistics; `warn=False` where
    that is the protocol, as for sparse S3DIS blocks)."""
    if num_points >= target:
        return rng.choice(num_points, target, replace=False) if num_points > target else np.arange(target)
    if warn:
        log.warning(
            "%s has %d points, fewer than %d: resampling with replacement",
            origin or "a cloud",
            num_points,
            target,
        )
    return np.concatenate([np.arange(num_points), rng.choice(num_points, target - num_points, replace=True)])


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre on the centroid and scale so the farthest point is at distance 1."""
    centred = points - points.mean(axis=0, keepdims=True)
    radius = np.linalg.norm(centred, axis=1).max()
    return (centred / radius if radius > 0 else centred).astype(np.float32)
