"""S3DIS (Armeni et al., CVPR 2016): preprocessed rooms `stanford_indoor3d/Area_<k>_<room>.npy`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from act3d.data.files import load_npy
from act3d.data.sample import Sample, check_points
from act3d.errors import DataError

CLASSES = [
    "ceiling",
    "floor",
    "wall",
    "beam",
    "column",
    "window",
    "door",
    "table",
    "chair",
    "sofa",
    "bookcase",
    "board",
    "clutter",
]


class S3DISRooms:
    """Whole rooms (rows `x y z r g b label`) of the chosen areas, loaded one room at a time."""

    def __init__(self, root: str | Path, areas: list[int], nonfinite: str = "error"):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"S3DIS root not found: {self.root} (expected Area_<k>_<room>.npy files)")
        self.files = sorted(p for a in areas for p in self.root.glob(f"Area_{a}_*.npy"))
        if not self.files:
            raise DataError(
                f"{self.root}: no rooms for areas {areas} (expected files named Area_<k>_<room>.npy)"
            )
        self.class_names = CLASSES
        self.name = "s3dis-areas-" + "-".join(map(str, areas))
        self.nonfinite = nonfinite

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Sample:
        path = self.files[i]
        data = load_npy(path)
        if data.ndim != 2 or data.shape[1] != 7:
            raise DataError(f"{path}: expected rows of x y z r g b label, got shape {data.shape}")
        labels = data[:, 6].astype(np.int64)
        if labels.min() < 0 or labels.max() >= len(CLASSES):
            raise DataError(
                f"{path}: semantic labels must lie in 0..{len(CLASSES) - 1}, got {labels.min()}..{labels.max()}"
            )
        points = check_points(data, str(path))
        return Sample(
            points,
            -1,
            colors=(data[:, 3:6] / 255.0).astype(np.float32),
            point_labels=labels,
            origin=str(path),
        )
