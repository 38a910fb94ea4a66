"""Opening any supported dataset by name, and the torch `Dataset` that feeds fixed-size clouds."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from act3d.data import default, folders, modelnet, s3dis, scanobjectnn, shapenet
from act3d.data.formats import FORMATS, DataFormat
from act3d.data.sample import CloudSource, Sample, normalize_unit_sphere, resample_indices
from act3d.errors import DataError, require
from act3d.ops.grouping import PatchConfig


@dataclass
class DataConfig:
    """Which data a run reads. `split` is `pretrain`, `train` or `test`."""

    format: DataFormat = "default"
    root: str | None = None  # dataset folder; the default dataset lives in the cache
    # default: clean | scan; scanobjectnn: obj_bg | obj_only | pb_t50_rs; few-shot: 5way10shot ...
    variant: str = "clean"
    fold: int = 0  # few-shot episode (0-9)
    # what the `pretrain` split reads: `train`, or `train+test` (the official Stage II on ShapeNet-55,
    # `whole: True` in cfgs/pretrain: 52,470 clouds; also for class-folders)
    pretrain_split: Literal["train", "train+test"] = "train"
    num_points: int = 1024
    # points read per cloud before a run samples its `num_points` on the device (fine-tuning's `fps`
    # sampling needs the stored cloud: 8192 for the ModelNet40 .dat files, 2048 for ScanObjectNN); 0 =
    # num_points
    load_points: int = 0
    nonfinite: Literal["error", "drop"] = "error"
    # hold every training cloud on the training device and draw batches there (`DeviceClouds`): one transfer
    # at the start, no per-cloud NumPy work or worker processes per step; the paper presets turn it on
    on_device: bool = False

    def __post_init__(self) -> None:
        require(self.num_points >= 1, "num_points", "an integer >= 1", self.num_points)
        require(
            self.load_points == 0 or self.load_points >= self.num_points,
            "load_points",
            f"0 or at least num_points = {self.num_points}",
            self.load_points,
        )
        require(self.fold >= 0, "fold", "an integer >= 0", self.fold)


def check_points_per_cloud(data: DataConfig, patching: PatchConfig) -> None:
    """A run's clouds must hold enough points for its patches (FPS centres, kNN neighbours)."""
    need = max(patching.num_groups, patching.group_size)
    require(
        data.num_points >= need,
        "data.num_points",
        f"at least max(patching.num_groups, patching.group_size) = {need}",
        data.num_points,
    )


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
    if split_for == "train+test" and fmt not in ("shapenet55", "class-folders"):
        raise DataError(
            f"data.pretrain_split 'train+test' is for shapenet55 and class-folders; {fmt!r} pretrains on 'train'"
        )
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
    if fmt == "class-folders":
        return folders.ClassFolders(root, split_for, cfg.nonfinite)
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
        points = sample.points[resample_indices(len(sample.points), self.num_points, rng, sample.origin)]
        if self.normalize_subset:
            points = normalize_unit_sphere(points)
        return torch.from_numpy(np.ascontiguousarray(points)), sample.label


class DeviceClouds:
    """Every cloud of a source as one `(M, L, 3)` tensor on the training device; a batch is a fresh random
    subset of `num_points` of each of its clouds' L stored points (all L in stored order when
    `num_points == L`, as `PointClouds` gives them), drawn with tensor ops from the default
    generator of the device (which the training loop seeds per step), so batches repeat across runs and
    resumes. L is the smallest stored cloud (at least `num_points`: shorter clouds are resampled once, with
    replacement, as `PointClouds` does); a longer cloud keeps a seeded subset of L points.
    """

    def __init__(self, source: CloudSource, num_points: int, seed: int = 0, progress: bool = False):
        from tqdm.auto import tqdm

        self.num_points, self.name = num_points, source.name
        self.normalize_subset = getattr(source, "normalize_subset", False)
        samples = [
            source[i] for i in tqdm(range(len(source)), desc="clouds", unit="cloud", disable=not progress)
        ]
        self.labels = torch.tensor([s.label for s in samples])
        stored = max(num_points, min(len(s.points) for s in samples))
        clouds = np.empty((len(samples), stored, 3), dtype=np.float32)
        # each read cloud is released once copied: at most twice the set in memory
        for i in range(len(samples)):
            s, samples[i] = samples[i], None
            clouds[i] = s.points[
                resample_indices(len(s.points), stored, np.random.default_rng([seed, i]), s.origin)
            ]
        self.points = torch.from_numpy(clouds)

    def __len__(self) -> int:
        return len(self.points)

    def to(self, device: torch.device) -> DeviceClouds:
        self.points, self.labels = self.points.to(device), self.labels.to(device)
        return self

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One cloud `(num_points, 3)` and its label, as `take` draws them."""
        points, labels = self.take(torch.tensor([index]))
        return points[0], labels[0]

    def take(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(b,)` sample indices -> `(b, num_points, 3)` clouds and `(b,)` labels, on the device."""
        indices = indices.to(self.points.device)
        points = self.points[indices]
        if self.num_points < points.shape[1]:  # else every stored point, in stored order (as PointClouds)
            keys = torch.rand(points.shape[:2], device=points.device)
            chosen = keys.argsort(dim=1)[:, : self.num_points]
            points = points.gather(1, chosen.unsqueeze(-1).expand(-1, -1, 3))
        if self.normalize_subset:
            points = points - points.mean(dim=1, keepdim=True)
            points = points / points.norm(dim=-1).amax(dim=1).clamp_min(1e-12)[:, None, None]
        return points, self.labels[indices]


def training_clouds(
    source: CloudSource, num_points: int, data: DataConfig, seed: int, progress: bool = False
) -> PointClouds | DeviceClouds:
    """The training set of a run: on the device (`data.on_device`) or read per sample by a DataLoader."""
    if data.on_device:
        return DeviceClouds(source, num_points, seed, progress)
    return PointClouds(source, num_points, train=True, seed=seed)


class SubsetSource:
    """Some samples of a source (a validation split, say), with its class names."""

    def __init__(self, source: CloudSource, indices: list[int], name: str):
        self.source, self.indices, self.name = source, indices, name
        self.class_names = source.class_names
        self.normalize_subset = getattr(source, "normalize_subset", False)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        return self.source[self.indices[index]]


def split_validation(
    source: CloudSource, fraction: float, seed: int
) -> tuple[CloudSource, CloudSource | None]:
    """Hold out a stratified, seeded `fraction` of a labelled source for validation: `(train, val)`.

    Each class gives `ceil(fraction * count)` samples, keeping at least one for training (a class with one
    sample gives none). A source with `groups` (one id per sample: samples that must stay on one side,
    such as the perturbed copies of one scanned object) gives whole groups, until its share is reached.
    `fraction` 0 returns `(source, None)`.
    """
    if not 0 <= fraction < 1:
        raise DataError(f"val_fraction must be in [0, 1), got {fraction}")
    if fraction == 0:
        return source, None
    labels = np.array([label_of(source, i) for i in range(len(source))])
    groups = getattr(source, "groups", None)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    rng = np.random.default_rng([seed, 7])
    val: list[int] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        wanted = min(len(members) - 1, math.ceil(fraction * len(members)))
        taken: list[int] = []
        for g in rng.permutation(np.unique(groups[members])):
            if len(taken) >= wanted:
                break
            group = members[groups[members] == g].tolist()
            if len(taken) + len(group) < len(members):  # a class keeps training samples
                taken += group
        val += taken
    if not val:
        raise DataError(
            f"{source.name}: too few samples to hold out {fraction:.0%} for validation; set val_fraction=0"
        )
    chosen = set(val)
    train = [i for i in range(len(source)) if i not in chosen]
    return SubsetSource(source, train, f"{source.name}-train"), SubsetSource(
        source, sorted(val), f"{source.name}-val"
    )


def label_of(source: CloudSource, index: int) -> int:
    """A sample's label, from the reader's label list when it keeps one (no file is read then)."""
    labels = getattr(source, "labels", None)
    return int(labels[index]) if labels is not None else source[index].label


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
        "name": source.name,
        "samples": len(source),
        "checked": n,
        "classes": len(source.class_names),
        "per_class": {c: int(k) for c, k in zip(source.class_names, counts) if k},
        "points_min": int(min(sizes)) if sizes else 0,
        "points_max": int(max(sizes)) if sizes else 0,
        "bbox_min": [round(float(v), 4) for v in lo],
        "bbox_max": [round(float(v), 4) for v in hi],
    }


__all__ = [
    "FORMATS",
    "DataConfig",
    "DeviceClouds",
    "PointClouds",
    "SubsetSource",
    "describe",
    "open_source",
    "split_validation",
    "stack_clouds",
    "training_clouds",
]
