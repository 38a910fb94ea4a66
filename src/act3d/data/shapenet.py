"""ShapeNet: the ShapeNet-55 clouds used for pretraining, and ShapeNetPart for part segmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from act3d.data.files import load_npy
from act3d.data.sample import Sample, check_points, normalize_unit_sphere
from act3d.errors import DataError

# ShapeNetPart: category -> its global part ids (the standard 16 categories / 50 parts split).
PART_IDS = {
    "Airplane": [0, 1, 2, 3],
    "Bag": [4, 5],
    "Cap": [6, 7],
    "Car": [8, 9, 10, 11],
    "Chair": [12, 13, 14, 15],
    "Earphone": [16, 17, 18],
    "Guitar": [19, 20, 21],
    "Knife": [22, 23],
    "Lamp": [24, 25, 26, 27],
    "Laptop": [28, 29],
    "Motorbike": [30, 31, 32, 33, 34, 35],
    "Mug": [36, 37],
    "Pistol": [38, 39, 40],
    "Rocket": [41, 42, 43],
    "Skateboard": [44, 45, 46],
    "Table": [47, 48, 49],
}
NUM_PARTS = 50


class ShapeNet55:
    """`ShapeNet55-34/`: `shapenet_pc/<synset>-<model>.npy` clouds listed in `ShapeNet-55/{split}.txt`.

    Stored as written; the official reader normalises each *sampled subset* to the unit sphere
    (datasets/ShapeNet55Dataset.py: `random_sample`, then `pc_norm`), which `PointClouds` does when a
    source sets `normalize_subset`.
    """

    normalize_subset = True

    def __init__(self, root: str | Path, split: str = "train", nonfinite: str = "error"):
        self.root = Path(root)
        # `train+test`: the official `whole` option, test list first (datasets/ShapeNet55Dataset.py)
        list_files = (
            [self.root / "ShapeNet-55" / f"{s}.txt" for s in ("test", "train")]
            if split == "train+test"
            else [self.root / "ShapeNet-55" / f"{split}.txt"]
        )
        if not (self.root / "shapenet_pc").is_dir() or not all(f.is_file() for f in list_files):
            raise DataError(
                f"ShapeNet-55 layout not found under {self.root}: expected shapenet_pc/*.npy and "
                f"ShapeNet-55/{{train,test}}.txt"
            )
        self.files = [ln.strip() for f in list_files for ln in f.read_text().splitlines() if ln.strip()]
        synsets = [f.split("-", 1)[0] for f in self.files]
        self.class_names = sorted(set(synsets))
        index = {s: i for i, s in enumerate(self.class_names)}
        self.labels = [index[s] for s in synsets]
        self.name = f"shapenet55-{split}"
        self.nonfinite = nonfinite

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Sample:
        path = self.root / "shapenet_pc" / self.files[i]
        return Sample(
            check_points(load_npy(path), str(path), self.nonfinite), self.labels[i], origin=str(path)
        )


class ShapeNetPart:
    """`shapenetcore_partanno_segmentation_benchmark_v0_normal/`: per-point part labels, 16 categories."""

    def __init__(self, root: str | Path, split: str = "train", nonfinite: str = "error"):
        self.root = Path(root)
        cat_file = self.root / "synsetoffset2category.txt"
        # trainval: the train and val lists together, as the official PartNormalDataset (dataset.py l.97-98)
        splits = ["train", "val"] if split == "trainval" else [split]
        split_files = [self.root / "train_test_split" / f"shuffled_{s}_file_list.json" for s in splits]
        for required in (cat_file, *split_files):
            if not required.is_file():
                raise DataError(
                    f"ShapeNetPart layout incomplete under {self.root}: missing {required.relative_to(self.root)}"
                )
        synset_to_cat = {}
        for line in cat_file.read_text().splitlines():
            if line.strip():
                if len(line.split()) != 2:
                    raise DataError(f"{cat_file}: line {line!r} is not '<category> <synset>'")
                cat, synset = line.split()
                synset_to_cat[synset] = cat
        self.class_names = sorted(synset_to_cat.values())
        unknown = sorted(set(synset_to_cat.values()) - set(PART_IDS))
        if unknown:
            raise DataError(
                f"{cat_file}: unknown ShapeNetPart categories {unknown}; expected among {sorted(PART_IDS)}"
            )
        self.items = []
        for split_file in split_files:
            self.items += self._entries(split_file, synset_to_cat)
        self.name = f"shapenetpart-{split}"
        self.nonfinite = nonfinite

    def _entries(self, split_file: Path, synset_to_cat: dict[str, str]) -> list[tuple[str, str, int]]:
        """`(synset, shape id, category index)` of every entry of one split list."""
        try:
            entries = json.loads(split_file.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{split_file}: not valid JSON ({err})") from None
        items = []
        for entry in entries:  # "shape_data/<synset>/<id>"
            parts = entry.split("/") if isinstance(entry, str) else []
            if len(parts) != 3 or not all(parts):
                raise DataError(
                    f"{split_file}: entry {entry!r} is not of the form shape_data/<synset>/<model id>"
                )
            _, synset, shape_id = parts
            if synset not in synset_to_cat:
                raise DataError(f"{split_file}: synset {synset} is not in synsetoffset2category.txt")
            items.append((synset, shape_id, self.class_names.index(synset_to_cat[synset])))
        return items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        synset, shape_id, label = self.items[i]
        path = self.root / synset / f"{shape_id}.txt"
        if not path.is_file():
            raise DataError(f"file not found: {path}")
        try:
            data = np.loadtxt(path, dtype=np.float32, ndmin=2)
        except ValueError as err:
            raise DataError(f"{path}: malformed part file ({err})") from None
        if data.shape[1] != 7:
            raise DataError(f"{path}: expected 7 columns (x y z nx ny nz part), got {data.shape[1]}")
        points = check_points(data, str(path))
        parts = data[:, 6].astype(np.int64)
        allowed = PART_IDS[self.class_names[label]]
        if not np.isin(parts, allowed).all():
            raise DataError(
                f"{path}: part labels {sorted(set(parts) - set(allowed))} do not belong to {self.class_names[label]}"
            )
        # normalised whole, before any sampling (official part_segmentation dataset: pc_normalize, then
        # choice)
        return Sample(normalize_unit_sphere(points), label, point_labels=parts, origin=str(path))
