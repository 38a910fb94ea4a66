"""Clouds stored as one HDF5 file with `data (M, N, 3)` and `label (M,)`: the ScanObjectNN layout, also
used for act3d's embedded default dataset."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from act3d.data.sample import Sample, check_label, check_points
from act3d.errors import DataError


class H5Clouds:
    """All clouds of one h5 file, held in memory."""

    def __init__(self, path: str | Path, class_names: list[str], name: str = "", nonfinite: str = "error"):
        self.path = Path(path)
        self.name = name or self.path.stem
        self.class_names = list(class_names)
        if not self.path.is_file():
            raise DataError(f"file not found: {self.path}")
        try:
            with h5py.File(self.path, "r") as f:
                missing = [k for k in ("data", "label") if k not in f]
                if missing:
                    raise DataError(f"{self.path}: missing h5 key(s) {missing} (expected 'data' and 'label')")
                data, labels = np.asarray(f["data"]), np.asarray(f["label"]).reshape(-1)
        except OSError as err:
            raise DataError(f"{self.path}: not a readable HDF5 file ({err})") from None
        if data.ndim != 3 or data.shape[2] < 3:
            raise DataError(f"{self.path}: 'data' must have shape (M, N, 3), got {data.shape}")
        for key, array in (("data", data), ("label", labels)):
            if not np.issubdtype(array.dtype, np.number):
                raise DataError(f"{self.path}: '{key}' holds {array.dtype} values; expected numbers")
        if nonfinite == "error":  # the whole file now, not when a bad cloud happens to be drawn
            bad = np.flatnonzero(~np.isfinite(data[:, :, :3]).all(axis=(1, 2)))
            if len(bad):
                raise DataError(
                    f"{self.path}: {len(bad)} cloud(s) have NaN/inf coordinates, the first at index {bad[0]}"
                )
        if len(labels) != len(data):
            raise DataError(f"{self.path}: {len(data)} clouds but {len(labels)} labels")
        self.points = data[:, :, :3].astype(np.float32)
        self.labels = labels.astype(np.int64)
        self.nonfinite = nonfinite
        # samples a validation split keeps together (`split_validation`); set by readers that know them
        self.groups: np.ndarray | None = None
        for i in np.flatnonzero((self.labels < 0) | (self.labels >= len(self.class_names)))[:1]:
            check_label(int(self.labels[i]), len(self.class_names), f"{self.path}[{i}]")

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> Sample:
        origin = f"{self.path}[{index}]"
        return Sample(
            check_points(self.points[index], origin, self.nonfinite), int(self.labels[index]), origin=origin
        )


def write_h5_clouds(path: str | Path, points: np.ndarray, labels: np.ndarray) -> None:
    """Write clouds in the ScanObjectNN h5 layout (float32 `data`, int64 `label`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.asarray(points, dtype=np.float32))
        f.create_dataset("label", data=np.asarray(labels, dtype=np.int64))
