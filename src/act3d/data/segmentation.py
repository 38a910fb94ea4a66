"""Fixed-size training samples for segmentation: whole ShapeNetPart shapes, S3DIS room blocks."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from act3d.data.sample import CloudSource, resample_indices


class PartShapes(Dataset):
    """ShapeNetPart shapes as `(points (N, 3), part labels (N,), category)` (the reader normalised them)."""

    def __init__(self, source: CloudSource, num_points: int, train: bool, seed: int = 0):
        self.source, self.num_points, self.train, self.seed, self.epoch = source, num_points, train, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        s = self.source[i]
        rng = np.random.default_rng([self.seed, i, self.epoch if self.train else 0])
        idx = resample_indices(len(s.points), self.num_points, rng, s.source)
        return torch.from_numpy(s.points[idx]), torch.from_numpy(s.point_labels[idx]), s.label


def room_blocks(points: np.ndarray, block: float, stride: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The `block x block` columns (x, y) of a room on a grid of `stride`: `(point indices, xy centre)` each."""
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    xs = np.arange(lo[0], max(lo[0] + 1e-6, hi[0] - block + stride), stride)
    ys = np.arange(lo[1], max(lo[1] + 1e-6, hi[1] - block + stride), stride)
    out = []
    for x in xs:
        for y in ys:
            inside = np.flatnonzero(
                (points[:, 0] >= x)
                & (points[:, 0] <= x + block)
                & (points[:, 1] >= y)
                & (points[:, 1] <= y + block)
            )
            if len(inside) >= 16:
                out.append((inside, np.array([x + block / 2, y + block / 2])))
    return out


class RoomBlocks(Dataset):
    """S3DIS rooms cut into `block`-metre columns of `num_points` points: `(xyz (N, 3), rgb (N, 3), labels (N,), 0)`.

    As the official semantic_segmentation/dataset.py: training draws `blocks_per_room` blocks around random
    points of each room per epoch (redrawn until a block holds more than 1024 points, or the room's most);
    evaluation covers each room with a fixed grid of blocks. xyz is centred on the block in x and y and
    otherwise kept in metres (z is the height above the room's origin).
    """

    def __init__(
        self,
        source: CloudSource,
        num_points: int,
        train: bool,
        block: float = 1.0,
        blocks_per_room: int = 8,
        seed: int = 0,
    ):
        self.source, self.num_points, self.train, self.block, self.seed, self.epoch = (
            source,
            num_points,
            train,
            block,
            seed,
            0,
        )
        self.rooms = [source[i] for i in range(len(source))]
        if train:
            self.items = [(r, k) for r in range(len(self.rooms)) for k in range(blocks_per_room)]
        else:
            self.items = [
                (r, blk)
                for r, room in enumerate(self.rooms)
                for blk in room_blocks(room.points, block, block)
            ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _random_block(self, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Indices of a block around a random point, and its centre; tries 10 times for > 1024 points."""
        half, best = self.block / 2, (np.zeros(0, dtype=np.int64), points[0, :2])
        for _ in range(10):
            centre = points[rng.integers(len(points)), :2]
            inside = np.flatnonzero(np.all(np.abs(points[:, :2] - centre) <= half, axis=1))
            if len(inside) > len(best[0]):
                best = (inside, centre)
            if len(inside) > 1024:
                break
        return best

    def __getitem__(self, i: int):
        r, which = self.items[i]
        room = self.rooms[r]
        rng = np.random.default_rng([self.seed, i, self.epoch if self.train else 0])
        if self.train:
            inside, centre = self._random_block(room.points, rng)
        else:
            inside, centre = which
        idx = inside[resample_indices(len(inside), self.num_points, rng, room.source, warn=False)]
        xyz = room.points[idx].copy()
        xyz[:, :2] -= centre
        return (
            torch.from_numpy(xyz.astype(np.float32)),
            torch.from_numpy(room.colors[idx]),
            torch.from_numpy(room.point_labels[idx]),
            0,
        )
