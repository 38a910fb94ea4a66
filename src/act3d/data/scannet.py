"""ScanNetV2 scenes for 3D object detection, as 3DETR reads them (facebookresearch/3detr @a5d1aad,
`datasets/scannet.py`, itself VoteNet's): the folder `scannet/batch_load_scannet_data.py` writes, one
`<scan>_vert.npy` `(N, 6)` (xyz, rgb), `<scan>_ins_label.npy` `(N,)`, `<scan>_sem_label.npy` `(N,)` (NYU40 ids)
and `<scan>_bbox.npy` `(K, 7)` (axis-aligned boxes: centre, size, NYU40 id) per scan, and the split lists
`scannetv2_train.txt` / `scannetv2_val.txt` (1,201 / 312 scans) in a metadata folder.

`Scene` is one scan as stored; `detection_sample` turns it into what 3DETR's `__getitem__` returns (40,000
points, 64 box slots, 3DETR's augmentation), drawing from a `RandomState` instead of numpy's global state, so
the official `__getitem__` run after `np.random.seed(s)` and `detection_sample(..., RandomState(s))` agree.
Files are read with `allow_pickle=False`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from act3d.data.scene_augment import random_cuboid, rotate_aligned_boxes, rotz
from act3d.errors import DataError
from act3d.ops.boxes import box_corners_np

# ScannetDatasetConfig (datasets/scannet.py l.27-59): the 18 classes in label order, their NYU40 ids
CLASSES = (
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "desk",
    "curtain",
    "refrigerator",
    "showercurtrain",
    "toilet",
    "sink",
    "bathtub",
    "garbagebin",
)
NYU40_IDS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
MAX_BOXES = 64  # `max_num_obj`: the box slots of every sample
NUM_POINTS = 40_000
CUBOID_MIN_POINTS = 30_000  # `random_cuboid_min_points` (main.py's default)


@dataclass
class Scene:
    """One scan as stored, its dtypes kept as the official loader keeps them: `points (N, 3)`,
    `colors (N, 3)`, per-point `instances (N,)` and NYU40 `semantics (N,)`, and `boxes (K, 7)`: centre, size
    (x, y, z extents), NYU40 id."""

    name: str
    points: np.ndarray
    colors: np.ndarray
    instances: np.ndarray
    semantics: np.ndarray
    boxes: np.ndarray


def _load(path: Path, header_only: bool = False) -> np.ndarray:
    if not path.is_file():
        raise DataError(
            f"{path}: missing; a ScanNet detection folder holds <scan>_vert.npy, _ins_label.npy, "
            "_sem_label.npy and _bbox.npy per scan (VoteNet's batch_load_scannet_data.py)"
        )
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if header_only else None)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable .npy array ({' '.join(str(err).split())[:200]})") from None


def _scan_arrays(root: str | Path, name: str, header_only: bool = False) -> tuple[np.ndarray, ...]:
    """The four arrays of scan `name`, their shapes checked (`header_only`: memory-mapped, values unread)."""
    base = Path(root) / name
    vert, instances, semantics, boxes = (
        _load(Path(f"{base}{suffix}"), header_only)
        for suffix in ("_vert.npy", "_ins_label.npy", "_sem_label.npy", "_bbox.npy")
    )
    if vert.ndim != 2 or vert.shape[1] < 6 or len(vert) == 0:
        raise DataError(f"{base}_vert.npy: expected (N, 6) points and colours, got shape {vert.shape}")
    if instances.shape != (len(vert),) or semantics.shape != (len(vert),):
        raise DataError(
            f"{base}: {len(vert)} points but labels of shape {instances.shape} and {semantics.shape}; "
            "expected one instance and one semantic label per point"
        )
    if boxes.ndim != 2 or boxes.shape[1] < 7:
        raise DataError(
            f"{base}_bbox.npy: expected (K, 7) boxes (centre, size, NYU40 id), got shape {boxes.shape}"
        )
    if len(boxes) > MAX_BOXES:
        raise DataError(
            f"{base}_bbox.npy: {len(boxes)} boxes, more than the {MAX_BOXES} box slots 3DETR gives a scene"
        )
    return vert, instances, semantics, boxes


def check_scans(root: str | Path, names: list[str]) -> None:
    """Every scan's four files present and of the right shapes, from their headers alone (a run checks its
    scans before it starts; the values are checked as each scene is read, `read_scene`)."""
    for name in names:
        _scan_arrays(root, name, header_only=True)


def read_scene(root: str | Path, name: str) -> Scene:
    """Scan `name` of the folder `root`, checked: shapes, finite numbers, boxes of the 18 classes, at most
    `MAX_BOXES` of them (the official loader fails on more, later and less clearly)."""
    base = Path(root) / name
    vert, instances, semantics, boxes = _scan_arrays(root, name)
    if not (np.isfinite(vert[:, :6]).all() and np.isfinite(boxes[:, :7]).all()):
        raise DataError(f"{base}: NaN or infinite coordinates in its points or boxes")
    if unknown := sorted({int(c) for c in boxes[:, 6]} - set(NYU40_IDS)):
        raise DataError(
            f"{base}_bbox.npy: NYU40 id(s) {unknown} are not among the 18 detection classes {NYU40_IDS}"
        )
    return Scene(name, vert[:, :3], vert[:, 3:6], instances, semantics, boxes[:, :7])


def scan_names(root: str | Path, meta: str | Path, split: str) -> list[str]:
    """The scans of `meta/scannetv2_<split>.txt` that `root` holds, in the list's order (datasets/scannet.py
    l.186-206: unavailable scans are dropped)."""
    root, listing = Path(root), Path(meta) / f"scannetv2_{split}.txt"
    if not root.is_dir():
        raise DataError(f"ScanNet detection folder not found: {root}")
    if not listing.is_file():
        raise DataError(
            f"{listing}: missing; expected the split lists scannetv2_train.txt and scannetv2_val.txt"
        )
    present = {p.name[:12] for p in root.iterdir() if p.name.startswith("scene")}
    names = [n for n in listing.read_text().splitlines() if n in present]
    if not names:
        raise DataError(f"{root}: holds none of the {split} scans listed in {listing}")
    return names


def detection_sample(
    scene: Scene,
    rng: np.random.RandomState,
    augment: bool,
    num_points: int = NUM_POINTS,
    cuboid_min_points: int = CUBOID_MIN_POINTS,
) -> dict[str, np.ndarray]:
    """One scene as 3DETR's `ScannetDetectionDataset.__getitem__` returns it (l.224-359, xyz only, no height):
    with `augment`, a random cuboid crop (of at least `cuboid_min_points`), then `num_points` points drawn (with
    replacement only from fewer), then flips of x and y and a rotation about z within ±5 degrees; box centres
    and sizes normalised by the cloud's bounds, corners in 3DETR's upright-camera frame."""
    points, boxes = scene.points, scene.boxes
    if augment:
        points, boxes, _ = random_cuboid(points, boxes, rng, cuboid_min_points)
    choices = rng.choice(points.shape[0], num_points, replace=points.shape[0] < num_points)
    points = points[choices]
    present = np.zeros(MAX_BOXES, dtype=np.float32)
    present[: len(boxes)] = 1
    target = np.zeros((MAX_BOXES, 6), dtype=np.float32)
    target[: len(boxes)] = boxes[:, :6]
    if augment:
        if rng.random_sample() > 0.5:  # flip along the YZ plane
            points[:, 0] = -1 * points[:, 0]
            target[:, 0] = -1 * target[:, 0]
        if rng.random_sample() > 0.5:  # flip along the XZ plane
            points[:, 1] = -1 * points[:, 1]
            target[:, 1] = -1 * target[:, 1]
        rot = rotz(rng.random_sample() * np.pi / 18 - np.pi / 36)
        points[:, 0:3] = np.dot(points[:, 0:3], np.transpose(rot))
        target = rotate_aligned_boxes(target, rot)
    sizes = target[:, 3:6]
    lo, hi = points.min(axis=0)[:3], points.max(axis=0)[:3]
    centers = target.astype(np.float32)[:, 0:3]
    centers_normalized = (centers - lo) / (hi - lo) * present[:, None]  # shift_scale_points to [0, 1]
    sizes_normalized = sizes.astype(np.float32) * (1.0 / (hi - lo))
    angles = np.zeros(MAX_BOXES, dtype=np.float32)
    classes = np.zeros(MAX_BOXES)
    classes[: len(boxes)] = [NYU40_IDS.index(int(c)) for c in boxes[:, 6]]
    corners = box_corners_np(sizes.astype(np.float32), angles, centers)
    return {
        "point_clouds": points.astype(np.float32),
        "gt_box_corners": corners.astype(np.float32),
        "gt_box_centers": centers.astype(np.float32),
        "gt_box_centers_normalized": centers_normalized.astype(np.float32),
        "gt_angle_class_label": np.zeros(MAX_BOXES, dtype=np.int64),
        "gt_angle_residual_label": np.zeros(MAX_BOXES, dtype=np.float32),
        "gt_box_sem_cls_label": classes.astype(np.int64),
        "gt_box_present": present,
        "gt_box_sizes": sizes.astype(np.float32),
        "gt_box_sizes_normalized": sizes_normalized.astype(np.float32),
        "gt_box_angles": angles,
        "point_cloud_dims_min": lo.astype(np.float32),
        "point_cloud_dims_max": hi.astype(np.float32),
    }


def describe_scenes(root: str | Path, meta: str | Path, split: str, limit: int | None = None) -> dict:
    """What `act3d data check --format scannet-detection` prints: the split's scans, points and boxes per
    scene, boxes per class; reading every scene (or the first `limit`) fully, so a bad file is named."""
    names = scan_names(root, meta, split)
    scenes = [read_scene(root, n) for n in names[: limit or len(names)]]
    counts = np.zeros(len(CLASSES), dtype=np.int64)
    for s in scenes:
        for c in s.boxes[:, 6]:
            counts[NYU40_IDS.index(int(c))] += 1
    return {
        "name": f"scannet {split}",
        "scans": len(names),
        "checked": len(scenes),
        "points_min": int(min(len(s.points) for s in scenes)),
        "points_max": int(max(len(s.points) for s in scenes)),
        "boxes_min": int(min(len(s.boxes) for s in scenes)),
        "boxes_max": int(max(len(s.boxes) for s in scenes)),
        "boxes_per_class": {c: int(k) for c, k in zip(CLASSES, counts) if k},
    }
