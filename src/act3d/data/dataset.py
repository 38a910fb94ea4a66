"""Opening any supported dataset by name, and the torch `Dataset` that feeds fixed-size clouds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from act3d.data import default, modelnet, s3dis, scanobjectnn, shapenet
from act3d.data.sample import CloudSource, normalize_unit_sphere, resample_indices
from act3d.errors import DataError

FORMATS = ["default", "shapenet55", "modelnet40", "modelnet40-dat", "modelnet40-fewshot", "scanobjectnn", "shapenetpart",
           "s3dis"]


@dataclass
class DataConfig:
    """Which data a run reads. `split` is `pretrain`, `train` or `test`."""

    format: Literal["default", "shapenet55", "modelnet40", "modelnet40-dat", "modelnet40-fewshot", "scanobjectnn",
                    "shapenetpart", "s3dis"] = "default"
    root: str | None = None  # dataset folder; the default dataset lives in the cache
    variant: str = "clean"  # default: clean | scan; scanobjectnn: obj_bg | obj_only | pb_t50_rs; few-shot: 5way10shot ...
    fold: int = 0  # few-shot episode (0-9)
    # what the `pretrain` split reads: `train`, or `train+test` (the official Stage II on ShapeNet-55,
    # `whole: True` in cfgs/pretrain: 52,470 clouds)
    pretrain_split: Literal["train", "train+test"] = "train"
    num_points: int = 1024
    nonfinite: Literal["error", "drop"] = "error"


def open_source(cfg: DataConfig, split: str) -> CloudSource:
    """The reader for `cfg.format` over one split."""
    fmt, root = cfg.format, cfg.root
    if fmt == "default":
        if cfg.variant not in ("clean", "scan"):
            raise DataError(f"the default dataset has variants 'clean' and 'scan', not {cfg.variant!r}")
        name = split if split == "pretrain" or cfg.variant == "clean" else f"scan_{split}"
        return default.default_split(name, nonfinite=cfg.nonfinite)
    if root is None:
        raise DataError(f"data format {fmt!r} needs a root folder (data.root)")
    split_for = cfg.pretrain_split if split == "pretrain" else split
    if split_for == "train+test" and fmt != "shapenet55":
        raise DataError(f"data.pretrain_split 'train+test' is for shapenet55; {fmt!r} pretrains on 'train'")
    if fmt == "shapenet55":
        return shapenet.ShapeNet55(root, split_for, cfg.nonfinite)
    if fmt == "modelnet40":
        return modelnet.ModelNet40Txt(root, split_for, cfg.nonfinite)
    if fmt == "modelnet40-dat":
        return modelnet.modelnet40_dat(root, split_for, cfg.nonfinite)
    if fmt == "modelnet40-fewshot":
        episode = re.fullmatch(r"(\d+)way_?(\d+)shot", cfg.variant)
        if episode is None:
            raise DataError(f"few-shot variant must look like '5way10shot', not {cfg.variant!r}")
        train, test = modelnet.modelnet40_fewshot(root, int(episode[1]), int(episode[2]), cfg.fold)
        return test if split == "test" else train
    if fmt == "scanobjectnn":
        return scanobjectnn.scanobjectnn(root, cfg.variant, split_for, cfg.nonfinite)
    if fmt == "shapenetpart":
        return shapenet.ShapeNetPart(root, split_for, cfg.nonfinite)
    if fmt == "s3dis":
        areas = [5] if split == "test" else [1, 2, 3, 4, 6]
        return s3dis.S3DISRooms(root, areas, cfg.nonfinite)
    raise DataError(f"unknown data format {fmt!r}; choose from {FORMATS}")


class PointClouds(Dataset):
    """Fixed-size clouds from any source: `(points (num_points, 3) float32, label)`.

    Training draws a fresh random subset of points each epoch (`set_epoch`); evaluation uses a fixed
    subset per sample, so results are reproducible.
    """

    def __init__(self, source: CloudSource, num_points: int, train: bool, seed: int = 0):
        self.source, self.num_points, self.train, self.seed = source, num_points, train, seed
        self.normalize_subset = getattr(source, "normalize_subset", False)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.source[index]
        rng = np.random.default_rng([self.seed, index, self.epoch if self.train else 0])
        points = sample.points[resample_indices(len(sample.points), self.num_points, rng, sample.source)]
        if self.normalize_subset:
            points = normalize_unit_sphere(points)
        return torch.from_numpy(np.ascontiguousarray(points)), sample.label


def stack_clouds(source: CloudSource, num_points: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sample of a source as one `(M, num_points, 3)` tensor and `(M,)` labels (small sets only)."""
    data = PointClouds(source, num_points, train=False, seed=seed)
    items = [data[i] for i in range(len(data))]
    return torch.stack([p for p, _ in items]), torch.tensor([label for _, label in items])


def describe(source: CloudSource, limit: int | None = None) -> dict:
    """Summary used by `act3d data check`: classes, counts, points per sample, bounding box."""
    n = len(source) if limit is None else min(limit, len(source))
    counts = np.zeros(max(1, len(source.class_names)), dtype=np.int64)
    sizes, lo, hi = [], np.full(3, np.inf), np.full(3, -np.inf)
    for i in range(n):
        s = source[i]
        if s.label >= 0:
            counts[s.label] += 1
        sizes.append(len(s.points))
        lo, hi = np.minimum(lo, s.points.min(0)), np.maximum(hi, s.points.max(0))
    return {
        "name": source.name, "samples": len(source), "checked": n, "classes": len(source.class_names),
        "per_class": {c: int(k) for c, k in zip(source.class_names, counts) if k},
        "points_min": int(min(sizes)) if sizes else 0, "points_max": int(max(sizes)) if sizes else 0,
        "bbox_min": [round(float(v), 4) for v in lo], "bbox_max": [round(float(v), 4) for v in hi],
    }


__all__ = ["FORMATS", "DataConfig", "PointClouds", "describe", "open_source", "stack_clouds"]
