"""3DETR's scene augmentation (facebookresearch/3detr @a5d1aad): the random cuboid crop
(`utils/random_cuboid.py`, from DepthContrast, keeping boxes whose centre stays inside) and the rotation of
axis-aligned boxes about the up axis (`datasets/scannet.py` `rotate_aligned_boxes`), drawing from a given
`RandomState`."""

from __future__ import annotations

import numpy as np


def rotz(t: float) -> np.ndarray:
    """The rotation by `t` about z (`utils/pc_util.py` `rotz`)."""
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _aspect_ok(crop: np.ndarray, aspect_min: float) -> bool:
    """`check_aspect` (random_cuboid.py l.5-13): some pair of the crop's extents is at least this square."""
    pairs = (crop[:2], crop[[0, 2]], crop[1:])
    return any(np.min(p) / np.max(p) >= aspect_min for p in pairs)


def random_cuboid(
    points: np.ndarray,
    boxes: np.ndarray,
    rng: np.random.RandomState,
    min_points: int,
    aspect: float = 0.8,
    min_crop: float = 0.5,
    max_crop: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random cuboid of the scene holding at least `min_points` points and at least one box centre
    (`RandomCuboid.__call__`, l.38-98): up to 100 tries, else the scene unchanged. Returns the points, the
    boxes whose centres lie within the cropped points' bounds, and the kept points' mask."""
    extent = np.max(points[:, 0:3], axis=0) - np.min(points[:, 0:3], axis=0)
    for _ in range(100):
        crop = min_crop + rng.rand(3) * (max_crop - min_crop)
        if not _aspect_ok(crop, aspect):
            continue
        center = points[rng.choice(len(points)), 0:3]
        half = extent * crop / 2.0
        inside = np.all(points[:, 0:3] <= center + half, axis=1) & np.all(
            points[:, 0:3] >= center - half, axis=1
        )
        if np.sum(inside) < min_points:
            continue
        cropped, kept = points[inside, :], boxes
        if boxes.sum() > 0:  # a scene without boxes keeps none
            lo, hi = np.min(cropped[:, 0:3], axis=0), np.max(cropped[:, 0:3], axis=0)
            keep = np.all(boxes[:, 0:3] >= lo, axis=1) & np.all(boxes[:, 0:3] <= hi, axis=1)
            if keep.sum() == 0:  # the crop removed every box: try again
                continue
            kept = boxes[keep]
        return cropped, kept, inside
    return points, boxes, np.ones(len(points), dtype=bool)


def rotate_aligned_boxes(boxes: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Axis-aligned boxes `(K, 6)` (centre, size) rotated by `rot` about z and made axis-aligned again: the
    centres rotated, x and y extents those of the rotated footprint (datasets/scannet.py l.138-159)."""
    centers, lengths = boxes[:, 0:3], boxes[:, 3:6]
    dx, dy = lengths[:, 0] / 2.0, lengths[:, 1] / 2.0
    new_x, new_y = np.zeros((len(dx), 4)), np.zeros((len(dx), 4))
    for i, (sx, sy) in enumerate([(-1, -1), (1, -1), (1, 1), (-1, 1)]):
        corner = np.zeros((len(dx), 3))
        corner[:, 0], corner[:, 1] = sx * dx, sy * dy
        corner = np.dot(corner, np.transpose(rot))
        new_x[:, i], new_y[:, i] = corner[:, 0], corner[:, 1]
    sizes = np.stack((2.0 * np.max(new_x, 1), 2.0 * np.max(new_y, 1), lengths[:, 2]), axis=1)
    return np.concatenate([np.dot(centers, np.transpose(rot)), sizes], axis=1)
