"""ModelNet40 (Wu et al., CVPR 2015): the resampled `.txt` layout, the preprocessed `.dat` pickles, and
the few-shot folds of Point-BERT.

Every cloud is centred and scaled to the unit sphere as it is read, as the official readers do
(`pc_normalize` in datasets/ModelNetDataset.py and ModelNetDatasetFewShot.py of Point-BERT / ACT).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from act3d.data.safe_pickle import load_pickle
from act3d.data.sample import Sample, check_label, check_points, normalize_unit_sphere
from act3d.errors import DataError


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _load_txt_cloud(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        data = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as err:
        raise DataError(f"{path}: malformed point file ({err})") from None
    return data


class ModelNet40Txt:
    """`modelnet40_normal_resampled/`: per-shape `<class>/<id>.txt` files with x,y,z,nx,ny,nz rows."""

    def __init__(self, root: str | Path, split: str = "train", nonfinite: str = "error"):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(
                f"ModelNet40 root not found: {self.root} (expected modelnet40_shape_names.txt, "
                "modelnet40_{train,test}.txt and <class>/<id>.txt inside)"
            )
        self.class_names = _read_lines(self.root / "modelnet40_shape_names.txt")
        self.ids = _read_lines(self.root / f"modelnet40_{split}.txt")
        self.name = f"modelnet40-{split}"
        self.nonfinite = nonfinite
        index = {c: i for i, c in enumerate(self.class_names)}
        self.labels = []
        for shape_id in self.ids:
            cls = shape_id.rsplit("_", 1)[0]
            if cls not in index:
                raise DataError(
                    f"{self.root}: shape {shape_id!r} has class {cls!r}, not in modelnet40_shape_names.txt"
                )
            self.labels.append(index[cls])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Sample:
        shape_id = self.ids[i]
        path = self.root / shape_id.rsplit("_", 1)[0] / f"{shape_id}.txt"
        data = _load_txt_cloud(path)
        points = check_points(data, str(path), self.nonfinite)
        return Sample(normalize_unit_sphere(points), self.labels[i], origin=str(path))


def _label(value, origin: str) -> int:
    """A stored label (an int, or a 1-element array as in the official pickles) as an int."""
    array = np.asarray(value).reshape(-1)
    if array.size != 1 or not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{origin}: expected an integer class label, got {value!r}")
    return int(array[0])


class InMemoryClouds:
    """A list of clouds with labels, already in memory; each is normalised to the unit sphere when read."""

    def __init__(
        self,
        clouds: list[np.ndarray],
        labels: list[int],
        class_names: list[str],
        name: str,
        origin: str,
        nonfinite: str = "error",
    ):
        if len(clouds) != len(labels):
            raise DataError(f"{origin}: {len(clouds)} clouds but {len(labels)} labels")
        self.clouds, self.labels = clouds, [_label(x, f"{origin}[{i}]") for i, x in enumerate(labels)]
        self.class_names, self.name, self.origin, self.nonfinite = class_names, name, origin, nonfinite
        if nonfinite == "error":  # every cloud now, not when a bad one happens to be drawn
            for i, cloud in enumerate(clouds):
                cloud = np.asarray(cloud)
                if cloud.dtype.kind in "fc" and not np.isfinite(cloud[..., :3]).all():
                    raise DataError(f"{origin}[{i}]: NaN/inf coordinates (the first such cloud)")
        for i, label in enumerate(self.labels):
            check_label(label, len(class_names), f"{origin}[{i}]")

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, i: int) -> Sample:
        origin = f"{self.origin}[{i}]"
        data = np.asarray(self.clouds[i])
        return Sample(
            normalize_unit_sphere(check_points(data, origin, self.nonfinite)), self.labels[i], origin=origin
        )


def modelnet40_dat(root: str | Path, split: str = "train", nonfinite: str = "error") -> InMemoryClouds:
    """The preprocessed `modelnet40_{split}_8192pts_fps.dat` pickle: `(list of (8192, 6) arrays, list of labels)`."""
    root = Path(root)
    path = root / f"modelnet40_{split}_8192pts_fps.dat"
    data = load_pickle(path)
    if not (isinstance(data, (list, tuple)) and len(data) == 2):
        raise DataError(f"{path}: expected a pickled (points_list, labels_list) pair")
    names_file = root / "modelnet40_shape_names.txt"
    class_names = _read_lines(names_file) if names_file.is_file() else [str(i) for i in range(40)]
    return InMemoryClouds(
        list(data[0]), list(data[1]), class_names, f"modelnet40-{split}", str(path), nonfinite
    )


def modelnet40_fewshot(
    root: str | Path, way: int, shot: int, fold: int
) -> tuple[InMemoryClouds, InMemoryClouds]:
    """One few-shot episode: `ModelNetFewshot/{way}way_{shot}shot/{fold}.pkl` -> (train, test)."""
    root = Path(root)
    candidates = [root / f"{way}way_{shot}shot" / f"{fold}.pkl", root / f"{way}way{shot}shot" / f"{fold}.pkl"]
    path = next((p for p in candidates if p.is_file()), candidates[0])
    data = load_pickle(path)
    if not (isinstance(data, dict) and {"train", "test"} <= set(data)):
        raise DataError(f"{path}: expected a dict with 'train' and 'test' lists of (points, label, extra)")
    names = [str(i) for i in range(way)]
    sets = []
    for split in ("train", "test"):
        items = data[split]
        try:
            clouds, labels = [it[0] for it in items], [it[1] for it in items]
        except (TypeError, IndexError):
            raise DataError(f"{path}: '{split}' must be a list of (points, label, extra) tuples") from None
        sets.append(
            InMemoryClouds(clouds, labels, names, f"fewshot-{way}w{shot}s-f{fold}-{split}", f"{path}:{split}")
        )
    return sets[0], sets[1]
