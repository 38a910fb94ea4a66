"""The scenes a detection run reads: a ScanNet detection folder (`act3d.data.scannet`) or the embedded rooms
(`act3d.data.rooms`, generated once into the cache), split into training, validation and test scans, and
served as 3DETR's samples (`detection_sample`), each drawn from its own seeded `RandomState`.

ScanNet has two lists, train (1,201 scans) and val (312); the literature, 3DETR included, reports val,
selecting on it too (main.py l.240-262 keeps the best val mAP25). act3d reads val once, as the test split,
and selects its checkpoint on a seeded fraction of the training scans (`val_fraction`; the scans of one
room, `sceneXXXX_YY` with the same `XXXX`, stay on one side).
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from act3d.cache import cache_lock, cache_root
from act3d.data.rooms import write_rooms
from act3d.data.scannet import (
    CUBOID_MIN_POINTS,
    NUM_POINTS,
    check_scans,
    detection_sample,
    read_scene,
    scan_names,
)
from act3d.errors import DataError, require

ROOMS_VERSION = 1  # bump when `act3d.data.rooms` makes other rooms


@dataclass
class SceneConfig:
    """Which scenes a detection run reads and how many points it samples from each."""

    # the folder of <scan>_vert.npy, _ins_label.npy, _sem_label.npy, _bbox.npy; `default`: the embedded rooms
    root: str = "default"
    meta: str | None = None  # the folder of scannetv2_{train,val}.txt; default: root/../meta_data
    num_points: int = NUM_POINTS
    # a training crop keeps at least this many points (ScannetDetectionDataset's random_cuboid_min_points)
    cuboid_min_points: int = CUBOID_MIN_POINTS

    def __post_init__(self) -> None:
        require(self.num_points >= 1, "num_points", "an integer >= 1", self.num_points)
        require(self.cuboid_min_points >= 1, "cuboid_min_points", "an integer >= 1", self.cuboid_min_points)


def default_rooms() -> Path:
    """The embedded rooms in the ScanNet layout (`write_rooms`: 40 training and 12 val rooms), built into
    the cache once; returns the folder holding `scans/` and `meta_data/`."""
    out = cache_root() / f"rooms-v{ROOMS_VERSION}"
    if (out / "meta_data" / "scannetv2_val.txt").is_file():
        return out
    with cache_lock(out):
        if (out / "meta_data" / "scannetv2_val.txt").is_file():
            return out
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        write_rooms(tmp)
        tmp.rename(out)
    return out


def scene_folders(cfg: SceneConfig) -> tuple[Path, Path]:
    """(scans folder, metadata folder) of `cfg`."""
    if cfg.root == "default":
        rooms = default_rooms()
        return rooms / "scans", rooms / "meta_data"
    root = Path(cfg.root)
    return root, Path(cfg.meta) if cfg.meta else root.parent / "meta_data"


def split_scans(names: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Training scans -> (training, validation): a seeded `fraction` of the rooms (`sceneXXXX`, every scan of
    a room on one side), at least one room kept for training; `fraction` 0 holds out none."""
    if fraction == 0:
        return names, []
    rooms = sorted({n[:9] for n in names})
    wanted = min(len(rooms) - 1, math.ceil(fraction * len(rooms)))
    held = set(np.random.default_rng([seed, 11]).permutation(rooms)[:wanted].tolist())
    return [n for n in names if n[:9] not in held], [n for n in names if n[:9] in held]


class DetectionScenes(Dataset):
    """Scans of one folder as 3DETR samples (dicts of arrays, `detection_sample`). Scene `i` of epoch `draw`
    draws from `RandomState` seeded by `(seed, draw, i)`: a resumed run, any worker count and any process
    see the same samples. Each scene is read when asked for, as the official loader reads it; its files'
    shapes are checked from their headers when the dataset is made, before a run starts."""

    def __init__(self, root: Path, names: list[str], augment: bool, cfg: SceneConfig, seed: int):
        if not names:
            raise DataError(f"{root}: no scans to read")
        check_scans(root, names)
        self.root, self.names, self.augment, self.cfg, self.seed = root, names, augment, cfg, seed
        self.draw = 0

    def set_epoch(self, epoch: int) -> None:
        self.draw = epoch

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        state = np.random.SeedSequence([self.seed, self.draw, i]).generate_state(1)[0]
        sample = detection_sample(
            read_scene(self.root, self.names[i]),
            np.random.RandomState(state),
            self.augment,
            self.cfg.num_points,
            self.cfg.cuboid_min_points,
        )
        return {k: torch.from_numpy(v) for k, v in sample.items()}


def scene_splits(
    cfg: SceneConfig, val_fraction: float, seed: int
) -> tuple[DetectionScenes, DetectionScenes | None, DetectionScenes]:
    """(training scenes, augmented; validation scenes, None with `val_fraction` 0; test scenes: the val
    list)."""
    root, meta = scene_folders(cfg)
    fit, val = split_scans(scan_names(root, meta, "train"), val_fraction, seed)
    test = scan_names(root, meta, "val")
    return (
        DetectionScenes(root, fit, True, cfg, seed),
        DetectionScenes(root, val, False, cfg, seed) if val else None,
        DetectionScenes(root, test, False, cfg, seed),
    )
