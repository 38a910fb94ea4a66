"""ScanObjectNN (Uy et al., ICCV 2019): real scanned objects, 15 classes, three variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from act3d.data.h5clouds import H5Clouds
from act3d.errors import DataError

CLASSES = [
    "bag",
    "bin",
    "box",
    "cabinet",
    "chair",
    "desk",
    "display",
    "door",
    "shelf",
    "table",
    "bed",
    "pillow",
    "sink",
    "sofa",
    "toilet",
]
VARIANTS = {
    "obj_bg": ("main_split", "{split}_objectdataset.h5"),
    "obj_only": ("main_split_nobg", "{split}_objectdataset.h5"),
    "pb_t50_rs": ("main_split", "{split}_objectdataset_augmentedrot_scale75.h5"),
}
_SPLIT_FILE = {"train": "training", "test": "test"}
# PB_T50_RS holds about five perturbed copies of every scanned object. A validation split of single
# samples would validate on copies of training objects, so `groups` keeps runs of consecutive samples
# together: each run of one label, cut every RUN samples. Where the file stores an object's copies next to
# each other (as a generator that perturbs one object at a time writes them), only the copies at a cut
# can fall on both sides.
RUN = 50


def consecutive_runs(labels: np.ndarray, run: int = RUN) -> np.ndarray:
    """`(M,)` labels -> `(M,)` group ids: runs of one label, cut every `run` samples."""
    ids, group, length = np.zeros(len(labels), dtype=np.int64), 0, 0
    for i in range(1, len(labels)):
        length += 1
        if labels[i] != labels[i - 1] or length == run:
            group, length = group + 1, 0
        ids[i] = group
    return ids


def scanobjectnn(
    root: str | Path, variant: str = "pb_t50_rs", split: str = "train", nonfinite: str = "error"
) -> H5Clouds:
    """Read one split of one variant from the official `h5_files` folder (`root/main_split/...`)."""
    if variant not in VARIANTS:
        raise DataError(f"unknown ScanObjectNN variant {variant!r}; choose from {sorted(VARIANTS)}")
    if split not in _SPLIT_FILE:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    folder, pattern = VARIANTS[variant]
    root = Path(root)
    path = root / folder / pattern.format(split=_SPLIT_FILE[split])
    if not root.is_dir():
        raise DataError(f"ScanObjectNN root not found: {root} (expected {folder}/{path.name} inside)")
    clouds = H5Clouds(path, CLASSES, name=f"scanobjectnn-{variant}-{split}", nonfinite=nonfinite)
    if variant == "pb_t50_rs":
        clouds.groups = consecutive_runs(clouds.labels)
    return clouds
