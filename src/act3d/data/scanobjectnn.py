"""ScanObjectNN (Uy et al., ICCV 2019): real scanned objects, 15 classes, three variants."""

from __future__ import annotations

from pathlib import Path

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
    return H5Clouds(path, CLASSES, name=f"scanobjectnn-{variant}-{split}", nonfinite=nonfinite)
