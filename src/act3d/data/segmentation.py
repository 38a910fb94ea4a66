"""Fixed-size samples for segmentation: whole ShapeNetPart shapes, S3DIS room blocks and whole rooms."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch.utils.data import Dataset

from act3d.data.sample import CloudSource, Sample

log = logging.getLogger(__name__)
# a random training block is redrawn until it holds more than this many points (official
# semantic_segmentation/dataset.py l.118-125)
MIN_BLOCK_POINTS = 1024
# the official loop redraws for ever; act3d stops after this many draws and keeps the fullest block seen
MAX_BLOCK_DRAWS = 1000


class PartShapes(Dataset):
    """ShapeNetPart shapes as `(points (N, 3), part labels (N,), category)` (the reader normalised them).

    `num_points` are drawn with replacement from each shape, as the official `PartNormalDataset`
    (`np.random.choice(len(seg), npoints, replace=True)`); training draws anew every epoch.
    """

    def __init__(self, source: CloudSource, num_points: int, train: bool, seed: int = 0):
        self.source, self.num_points, self.train, self.seed, self.epoch = source, num_points, train, seed, 0
        # a held-out set's draw: 0 for every score; the per-epoch test-selected readings take 1, 2, ..., as
        # the official loaders draw anew each epoch (part_segmentation/dataset.py l.155)
        self.draw = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        s = self.source[i]
        rng = np.random.default_rng([self.seed, i, self.epoch if self.train else self.draw])
        idx = rng.choice(len(s.points), self.num_points, replace=True)
        return torch.from_numpy(s.points[idx]), torch.from_numpy(s.point_labels[idx]), s.label


def blocks_per_room(point_counts: list[int], num_points: int, sample_rate: float = 1.0) -> list[int]:
    """How many random blocks of each room one epoch draws (official S3DISDataset, dataset.py l.104-109):
    `int(total points x sample_rate / num_points)` blocks in all, each room's share proportional to its
    points (`round`, half to even, as NumPy's)."""
    counts = np.asarray(point_counts, dtype=np.float64)
    num_iter = int(counts.sum() * sample_rate / num_points)
    return [int(round(p * num_iter)) for p in counts / counts.sum()]


def label_weights(rooms: list[Sample], num_classes: int) -> np.ndarray:
    """Cross-entropy class weights `(max_freq / freq) ** (1/3)` over the rooms' points (official S3DISDataset,
    dataset.py l.100-102). A class no room holds never is a training target; its weight is 0."""
    counts = np.zeros(num_classes)
    for room in rooms:
        counts += np.bincount(room.point_labels, minlength=num_classes)[:num_classes]
    freq = counts / counts.sum()
    weights = np.zeros(num_classes)
    present = freq > 0
    weights[present] = (freq.max() / freq[present]) ** (1 / 3)
    return weights.astype(np.float32)


def centred_block(room: Sample, idx: np.ndarray, centre: np.ndarray):
    """The `(xyz, rgb, labels, 0)` sample of a room's points `idx`: x and y centred on the block, z kept."""
    xyz = room.points[idx].copy()
    xyz[:, :2] -= centre
    return (
        torch.from_numpy(xyz.astype(np.float32)),
        torch.from_numpy(room.colors[idx]),
        torch.from_numpy(room.point_labels[idx]),
        0,
    )


class RoomBlocks(Dataset):
    """Random `block`-metre columns of S3DIS rooms, `num_points` points each: `(xyz (N, 3), rgb (N, 3),
    labels (N,), 0)`, as the official S3DISDataset (semantic_segmentation/dataset.py l.72-148).

    One epoch holds `blocks_per_room` blocks of each room (in proportion to its points). Each block is
    centred on a random point of its room and redrawn until it holds more than `MIN_BLOCK_POINTS` points;
    `num_points` of its points are then drawn, with replacement only when it holds fewer. xyz is centred on
    the block in x and y and otherwise kept in metres (z is the height above the room's origin). Training
    draws new blocks every epoch (`set_epoch`); evaluation (`train=False`) always the same ones.
    """

    def __init__(
        self,
        source: CloudSource,
        num_points: int,
        train: bool,
        block: float = 1.0,
        sample_rate: float = 1.0,
        seed: int = 0,
    ):
        self.source, self.num_points, self.train, self.block, self.seed = (
            source,
            num_points,
            train,
            block,
            seed,
        )
        self.epoch = 0
        # a held-out set's draw: 0 for every score; the per-epoch test-selected readings take 1, 2, ..., as
        # the official S3DISDataset draws its blocks anew each epoch (semantic_segmentation/dataset.py
        # l.119-130)
        self.draw = 0
        self.rooms = [source[i] for i in range(len(source))]
        per_room = blocks_per_room([len(r.points) for r in self.rooms], num_points, sample_rate)
        self.room_of = [r for r, count in enumerate(per_room) for _ in range(count)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.room_of)

    def _random_block(self, room: Sample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Indices of a block around a random point with more than `MIN_BLOCK_POINTS` points, and its
        centre; after `MAX_BLOCK_DRAWS` draws, the fullest block drawn."""
        points = room.points
        half, best = self.block / 2, (np.zeros(0, dtype=np.int64), points[0, :2])
        for _ in range(MAX_BLOCK_DRAWS):
            centre = points[rng.integers(len(points)), :2]
            inside = np.flatnonzero(np.all(np.abs(points[:, :2] - centre) <= half, axis=1))
            if len(inside) > len(best[0]):
                best = (inside, centre)
            if len(inside) > MIN_BLOCK_POINTS:
                return best
        log.warning(
            "no %.1f m block of %s holds more than %d points; using one of %d",
            self.block,
            room.origin,
            MIN_BLOCK_POINTS,
            len(best[0]),
        )
        return best

    def __getitem__(self, i: int):
        room = self.rooms[self.room_of[i]]
        rng = np.random.default_rng([self.seed, i, self.epoch if self.train else self.draw])
        inside, centre = self._random_block(room, rng)
        idx = rng.choice(inside, self.num_points, replace=len(inside) < self.num_points)
        return centred_block(room, idx, centre)


def whole_room_blocks(
    points: np.ndarray, num_points: int, rng: np.random.Generator, block: float = 1.0, stride: float = 0.5
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every point of a room in `num_points`-point pieces of `block`-metre columns on a grid of `stride`
    (official `ScannetDatasetWholeScene`, semantic_segmentation/dataset.py l.150-236): the columns reach
    0.001 m past their edges, the last column of a row ends at the room's edge, each column's points are
    padded with random repeats to a multiple of `num_points` and shuffled. Returns `(point indices
    (num_points,), xy centre)` per piece."""
    pad = 0.001
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    grid = [max(1, int(math.ceil((hi[a] - lo[a] - block) / stride) + 1)) for a in (0, 1)]
    pieces = []
    for iy in range(grid[1]):
        for ix in range(grid[0]):
            end = np.minimum(lo + np.array([ix, iy]) * stride + block, hi)
            start = end - block
            inside = np.flatnonzero(
                np.all((points[:, :2] >= start - pad) & (points[:, :2] <= end + pad), axis=1)
            )
            if len(inside) == 0:
                continue
            size = math.ceil(len(inside) / num_points) * num_points
            extra = rng.choice(inside, size - len(inside), replace=size - len(inside) > len(inside))
            idx = np.concatenate([inside, extra])
            rng.shuffle(idx)
            pieces += [(piece, start + block / 2) for piece in idx.reshape(-1, num_points)]
    return pieces
