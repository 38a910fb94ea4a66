"""act3d's embedded detection scenes: small rooms built from the embedded object families, written in the
ScanNet detection layout 3DETR reads (`act3d.data.scannet`), so the same reader, augmentation and
evaluation run on them and a CPU preset detects end to end in minutes.

A room is a floor and two walls with 3 to 6 pieces of furniture standing on the floor, each an embedded
object of a class that is also a ScanNet detection class (chair, sofa, table, bed, bookshelf), scaled to a
plausible size, turned by a multiple of 90 degrees (so its axis-aligned box is tight) and placed where it
overlaps no other; its box is the extent of its points. Points are xyz in metres, z up; colours are grey.
Deterministic in the seed and the room's index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from act3d.data.shapes import FAMILIES, sample_object

# embedded family -> (its ScanNet class's NYU40 id, the range of its largest extent in metres)
FURNITURE = {
    "chair": (5, (0.8, 1.1)),
    "sofa": (6, (1.6, 2.2)),
    "table": (7, (1.0, 1.6)),
    "bed": (4, (1.9, 2.2)),
    "shelf": (10, (1.2, 1.8)),
}
ROOM = (6.0, 5.0, 2.5)  # x, y extents and wall height, metres


def _plane(rng: np.random.Generator, n: int, lo: tuple[float, ...], hi: tuple[float, ...]) -> np.ndarray:
    return rng.uniform(lo, hi, size=(n, 3))


def room(
    index: int, points: int = 12_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Room `index`: `(N, 3)` points, per-point instance ids `(N,)` (0: floor and walls), per-point NYU40
    ids `(N,)` (2 floor, 1 wall), and boxes `(K, 7)` (centre, size, NYU40 id)."""
    rng = np.random.default_rng([seed, index])
    names = list(FURNITURE)
    placed: list[tuple[np.ndarray, np.ndarray]] = []
    clouds, instances, semantics, boxes = [], [], [], []
    per_object = points // 10
    for _ in range(100):  # placement attempts
        if len(placed) == 3 + index % 4:
            break
        cls = names[rng.integers(len(names))]
        nyu, (small, large) = FURNITURE[cls]
        obj, _ = sample_object(FAMILIES[cls](rng), per_object, rng)
        obj = np.stack([obj[:, 0], -obj[:, 2], obj[:, 1]], axis=1)  # the families are y-up; rooms are z-up
        obj = (
            obj
            @ np.linalg.matrix_power(np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), int(rng.integers(4))).T
        )
        obj = (obj - obj.min(0)) * (rng.uniform(small, large) / np.ptp(obj, axis=0).max())
        size = np.ptp(obj, axis=0)
        corner = np.array(
            [rng.uniform(0.1, ROOM[0] - size[0] - 0.1), rng.uniform(0.1, ROOM[1] - size[1] - 0.1), 0]
        )
        lo, hi = corner, corner + size
        if any(np.all(lo[:2] < b_hi[:2]) and np.all(b_lo[:2] < hi[:2]) for b_lo, b_hi in placed) or np.any(
            hi[:2] > ROOM[:2]
        ):
            continue
        placed.append((lo, hi))
        clouds.append(obj + corner)
        instances.append(np.full(len(obj), len(placed)))
        semantics.append(np.full(len(obj), nyu))
        boxes.append(np.concatenate([(lo + hi) / 2, hi - lo, [nyu]]))
    rest = points - sum(len(c) for c in clouds)
    floor, wall = rest // 2, rest - rest // 2
    clouds += [
        _plane(rng, floor, (0, 0, 0), (ROOM[0], ROOM[1], 0)),
        _plane(rng, wall // 2, (0, 0, 0), (ROOM[0], 0, ROOM[2])),
        _plane(rng, wall - wall // 2, (0, 0, 0), (0, ROOM[1], ROOM[2])),
    ]
    instances += [np.zeros(floor), np.zeros(wall)]
    semantics += [np.full(floor, 2), np.full(wall, 1)]
    xyz = np.concatenate(clouds).astype(np.float32)
    return (
        xyz,
        np.concatenate(instances).astype(np.uint32),
        np.concatenate(semantics).astype(np.uint32),
        np.array(boxes),
    )


def write_rooms(
    out: Path, train: int = 40, val: int = 12, points: int = 12_000, seed: int = 0
) -> tuple[Path, Path]:
    """`out/scans` in VoteNet's layout (`<scan>_vert.npy` with grey colours, `_ins_label.npy`,
    `_sem_label.npy`, `_bbox.npy`) and `out/meta_data` with `scannetv2_{train,val}.txt`; returns both."""
    data, meta = out / "scans", out / "meta_data"
    data.mkdir(parents=True, exist_ok=True)
    meta.mkdir(parents=True, exist_ok=True)
    names = [f"scene{i:04d}_00" for i in range(train + val)]
    for i, name in enumerate(names):
        xyz, instances, semantics, boxes = room(i, points, seed)
        np.save(data / f"{name}_vert.npy", np.concatenate([xyz, np.full_like(xyz, 128.0)], axis=1))
        np.save(data / f"{name}_ins_label.npy", instances)
        np.save(data / f"{name}_sem_label.npy", semantics)
        np.save(data / f"{name}_bbox.npy", boxes)
    (meta / "scannetv2_train.txt").write_text("\n".join(names[:train]) + "\n")
    (meta / "scannetv2_val.txt").write_text("\n".join(names[train:]) + "\n")
    return data, meta
