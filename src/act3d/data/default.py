"""act3d's embedded default dataset, generated on first use and cached: no download needed.

It plays the roles of the paper's datasets at a CPU-friendly size:
- `pretrain`: unlabelled clean objects (the ShapeNet-55 role),
- `train` / `test`: labelled clean, aligned objects (the ModelNet40 role),
- `scan_train` / `scan_test`: the same classes seen as partial single-view scans with floor, wall and
  clutter, sensor noise and the translate / rotate / scale perturbations of ScanObjectNN PB_T50_RS.
Each split is one h5 file in the ScanObjectNN layout (`data`, `label`), read by `H5Clouds`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from act3d.cache import cache_lock, cache_root
from act3d.data.h5clouds import H5Clouds, write_h5_clouds
from act3d.data.sample import normalize_unit_sphere
from act3d.data.shapes import FAMILIES, Surface, box, sample_object
from act3d.errors import DataError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CLASSES = sorted(FAMILIES)
SPLITS = ("pretrain", "train", "test", "scan_train", "scan_test")


@dataclass(frozen=True)
class DefaultDataSpec:
    """Size and seed of the embedded dataset; a different spec is a different cache entry."""

    seed: int = 0
    num_points: int = 2048
    pretrain_per_class: int = 100
    train_per_class: int = 40
    test_per_class: int = 20

    def key(self) -> str:
        text = json.dumps({"version": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def default_data_dir(spec: DefaultDataSpec = DefaultDataSpec()) -> Path:
    return cache_root() / f"default-{spec.key()}"


# ---------------------------------------------------------------------------------------------------
# One object, clean or scanned
# ---------------------------------------------------------------------------------------------------


def _rng(spec: DefaultDataSpec, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, SPLITS.index(split), index])


def clean_object(cls: str, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """An aligned object of class `cls`, normalised to the unit sphere: `(num_points, 3)`."""
    points, _ = sample_object(FAMILIES[cls](rng), num_points, rng)
    return normalize_unit_sphere(points)


def _visible(points: np.ndarray, normals: np.ndarray, camera: np.ndarray, pixel: float = 0.045) -> np.ndarray:
    """Mask of points a camera at `camera` sees: front-facing and nearest in their pixel (a z-buffer)."""
    to_cam = camera - points
    front = (normals * to_cam).sum(1) > 0
    forward = -camera / np.linalg.norm(camera)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rel = points - camera
    depth = rel @ forward
    u, v = np.floor(rel @ right / pixel).astype(np.int64), np.floor(rel @ up / pixel).astype(np.int64)
    cell = (u - u.min()) * (v.max() - v.min() + 1) + (v - v.min())
    nearest = np.full(cell.max() + 1, np.inf)
    np.minimum.at(nearest, cell[front], depth[front])
    return front & (depth <= nearest[cell] + 2 * pixel)


def _plane(center, size, normal_axis: int) -> Surface:
    dims = list(size)
    dims[normal_axis] = 1e-4
    return box(center, dims)


def scanned_object(cls: str, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """A partial, cluttered, perturbed single-view scan of an object of class `cls` (PB_T50_RS-like)."""
    obj_parts = FAMILIES[cls](rng)
    obj, obj_n = sample_object(obj_parts, 8000, rng)
    lo, hi = obj.min(0), obj.max(0)
    centre, scale = (lo + hi) / 2, np.linalg.norm(hi - lo) / 2
    obj, lo, hi = (obj - centre) / scale, (lo - centre) / scale, (hi - centre) / scale
    obj_area = sum(p.area for p in obj_parts) / scale**2
    floor_y = lo[1]
    # background: the floor, often a wall, and one or two neighbouring objects
    scene = [_plane((0, floor_y, 0), (3.2, 0, 3.2), 1)]
    if rng.uniform() < 0.6:
        scene.append(_plane((0, floor_y + 0.8, -rng.uniform(0.9, 1.4)), (3.2, 1.6, 0), 2))
    for _ in range(int(rng.integers(1, 3))):
        other = FAMILIES[CLASSES[int(rng.integers(len(CLASSES)))]](rng)
        factor = rng.uniform(0.6, 1.0) * np.sqrt(obj_area / sum(p.area for p in other))
        angle = rng.uniform(0, 2 * np.pi)
        offset = np.array(
            [np.cos(angle) * rng.uniform(1.1, 1.6), floor_y, np.sin(angle) * rng.uniform(1.1, 1.6)]
        )
        scene += [_scaled(p, factor, offset) for p in other]
    # the same sampling density on the background as on the object
    bg, bg_n = sample_object(scene, int(8000 * sum(p.area for p in scene) / obj_area), rng)
    points, normals = np.concatenate([obj, bg]), np.concatenate([obj_n, bg_n])
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(np.radians(10), np.radians(45))
    camera = 3.5 * np.array(
        [np.cos(elevation) * np.cos(azimuth), np.sin(elevation), np.cos(elevation) * np.sin(azimuth)]
    )
    points = points[_visible(points, normals, camera)]
    points = points + rng.normal(scale=0.01, size=points.shape)
    # PB_T50_RS: the object's box, enlarged, shifted by up to 50% of its size, cuts the scan
    half = (hi - lo) / 2 * 1.2
    shift = rng.uniform(-0.5, 0.5, size=3) * (hi - lo) * np.array([1, 0.3, 1])
    inside = np.all(np.abs(points - shift) <= half + 0.05, axis=1)
    points = points[inside] if inside.sum() >= 64 else points
    angle = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(angle), np.sin(angle)
    points = points @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T * rng.uniform(0.85, 1.15, size=3)
    # thin objects seen edge-on can leave few points; duplicates are part of what a scanner gives
    points = points[rng.choice(len(points), num_points, replace=len(points) < num_points)]
    return normalize_unit_sphere(points)


def _scaled(surface: Surface, factor: float, offset: np.ndarray) -> Surface:
    def sample(n, rng):
        p, nrm = surface.sample(n, rng)
        return p * factor + offset, nrm

    return Surface(surface.area * factor**2, sample)


# ---------------------------------------------------------------------------------------------------
# Building and opening the cache
# ---------------------------------------------------------------------------------------------------


def _build_split(spec: DefaultDataSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    per_class = {
        "pretrain": spec.pretrain_per_class,
        "train": spec.train_per_class,
        "test": spec.test_per_class,
        "scan_train": spec.train_per_class,
        "scan_test": spec.test_per_class,
    }[split]
    make = scanned_object if split.startswith("scan") else clean_object
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    clouds = np.stack(
        [make(CLASSES[label], spec.num_points, _rng(spec, split, i)) for i, label in enumerate(labels)]
    )
    return clouds, labels


def build_default(
    spec: DefaultDataSpec = DefaultDataSpec(), force: bool = False, workers: int | None = None
) -> Path:
    """Generate the default dataset into the cache (once); returns its folder."""
    out = default_data_dir(spec)
    if (out / "meta.json").is_file() and not force:
        return out
    with cache_lock(out):
        if (out / "meta.json").is_file() and not force:  # another process built it while this one waited
            return out
        return _build_default(spec, out, workers)


def _build_default(spec: DefaultDataSpec, out: Path, workers: int | None) -> Path:
    start = time.perf_counter()
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    workers = workers or min(len(SPLITS), os.cpu_count() or 1)
    with ProcessPoolExecutor(workers) as pool:
        results = dict(zip(SPLITS, pool.map(_build_split, [spec] * len(SPLITS), SPLITS)))
    counts = {}
    for split, (clouds, labels) in results.items():
        write_h5_clouds(tmp / f"{split}.h5", clouds, labels)
        counts[split] = int(len(labels))
    (tmp / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    meta = {
        "format_version": FORMAT_VERSION,
        "spec": asdict(spec),
        "classes": CLASSES,
        "counts": counts,
        "build_seconds": round(time.perf_counter() - start, 2),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # publish atomically: a half-built cache is never seen
    log.info("built the default dataset in %.1fs at %s", meta["build_seconds"], out)
    return out


def default_split(
    split: str, spec: DefaultDataSpec = DefaultDataSpec(), nonfinite: str = "error"
) -> H5Clouds:
    """Open one split of the default dataset, building it first if needed."""
    if split not in SPLITS:
        raise DataError(f"unknown default split {split!r}; choose from {list(SPLITS)}")
    root = build_default(spec)
    return H5Clouds(root / f"{split}.h5", CLASSES, name=f"default-{split}", nonfinite=nonfinite)
