"""Corruption robustness as ModelNet-C defines it (Ren, Pan, Liu, ICML 2022; jiawei-ren/ModelNet-C @0c82ce0).

Seven corruptions at five levels, each computed as the official `build_modelnetc/corrupt_utils.py` does
(`corrupt`), and the two scores of its `modelnetc_utils/eval.py` (`scores`): per corruption the error
normalised by DGCNN's (CE) and the accuracy drop from clean normalised by DGCNN's (RCE), averaged into mCE and
RmCE. The official generator draws from numpy's global state, seeded once for the whole test set; `corrupt`
draws from a `RandomState` of its own, seeded per cloud (`cloud_seed`), so the same seed damages a cloud the
same way whatever else is corrupted, and the official function called after `np.random.seed(s)` returns the
same points as `corrupt(..., RandomState(s))`. Clouds damaged here are not the released ModelNet-C files,
whose draw differs: scores on them are named apart (docs/method.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from act3d.errors import ConfigError
from act3d.eval.features import batched_features
from act3d.models.precision import Precision

CORRUPTIONS = ("scale", "jitter", "rotate", "dropout_global", "dropout_local", "add_global", "add_local")
LEVELS = 5
CLEAN_POINTS = 1024  # points per clean cloud of the official files (build_modelnetc/corrupt.py l.8)
# the damaged sets, named as the official files are (`<corruption>_<level>.h5`, build_modelnetc/corrupt.py l.54-65)
SETTINGS = tuple(f"{c}_{level}" for c in CORRUPTIONS for level in range(LEVELS))
# DGCNN's accuracies, the normaliser of CE and RCE (modelnetc_utils/eval.py l.23-32)
DGCNN_OA = {
    "clean": 0.926,
    "scale": 0.906,
    "jitter": 0.684,
    "rotate": 0.785,
    "dropout_global": 0.752,
    "dropout_local": 0.793,
    "add_global": 0.705,
    "add_local": 0.725,
}


def _normalize(pc: np.ndarray) -> np.ndarray:
    """Centred, farthest point at radius 1 (`_pc_normalize`, l.5-15)."""
    pc = pc - np.mean(pc, axis=0)
    return pc / np.max(np.sqrt(np.sum(pc**2, axis=1)))


def _shuffle(pc: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """The points in a random order (`_shuffle_pointcloud`, l.18-25)."""
    return np.take_along_axis(pc, rng.rand(pc.shape[0], 1).argsort(axis=0), axis=0)


def _cluster_sizes(num_clusters: int, total: int, rng: np.random.RandomState) -> list[int]:
    """`total` points split at random over `num_clusters` clusters (`_gen_random_cluster_sizes`, l.28-37)."""
    drawn = rng.randint(num_clusters, size=total)
    return [int(np.sum(drawn == i)) for i in range(num_clusters)]


def _in_unit_ball(n: int, rng: np.random.RandomState) -> np.ndarray:
    """`(n, 3)` points uniform in the unit ball (`_sample_points_inside_unit_sphere`, l.40-54)."""
    radius = np.power(rng.uniform(0.0, 1.0, (n, 1)), 1 / 3)
    theta = np.arccos(rng.uniform(-1.0, 1.0, (n, 1)))
    phi = rng.uniform(0, 2 * np.pi, (n, 1))
    x, y = radius * np.sin(theta) * np.cos(phi), radius * np.sin(theta) * np.sin(phi)
    return np.concatenate([x, y, radius * np.cos(theta)], axis=1)


def _scale(pc: np.ndarray, level: int, rng: np.random.RandomState) -> np.ndarray:
    """Each axis scaled by U(1/s, s), s = 1.6 ... 2.0, then normalised (`corrupt_scale`, l.57-66)."""
    s = [1.6, 1.7, 1.8, 1.9, 2.0][level]
    return _normalize(np.multiply(pc, rng.uniform(low=1.0 / s, high=s, size=[3])).astype("float32"))


def _jitter(pc: np.ndarray, level: int, rng: np.random.RandomState) -> np.ndarray:
    """Gaussian noise of sigma 0.01 ... 0.05 (`corrupt_jitter`, l.69-79)."""
    return pc + 0.01 * (level + 1) * rng.randn(*pc.shape)


def _rotate(pc: np.ndarray, level: int, rng: np.random.RandomState) -> np.ndarray:
    """Three Euler angles each U(-a, a), a = 6 ... 30 degrees; points @ Rz Ry Rx (`corrupt_rotate`, l.82-102)."""
    clip = math.pi / 6 / 5 * (level + 1)
    a = rng.uniform(-clip, clip, size=(3))
    rx = np.array([[1, 0, 0], [0, np.cos(a[0]), -np.sin(a[0])], [0, np.sin(a[0]), np.cos(a[0])]])
    ry = np.array([[np.cos(a[1]), 0, np.sin(a[1])], [0, 1, 0], [-np.sin(a[1]), 0, np.cos(a[1])]])
    rz = np.array([[np.cos(a[2]), -np.sin(a[2]), 0], [np.sin(a[2]), np.cos(a[2]), 0], [0, 0, 1]])
    return np.dot(pc, np.dot(rz, np.dot(ry, rx)))


def _dropout_global(pc: np.ndarray, level: int, rng: np.random.RandomState) -> np.ndarray:
    """A random 25 ... 75% of the points dropped (`corrupt_dropout_global`, l.105-116)."""
    rate = [0.25, 0.375, 0.5, 0.625, 0.75][level]
    return _shuffle(pc, rng)[: int(pc.shape[0] * (1 - rate)), :]


def _dropout_local(pc: np.ndarray, level: int, rng: np.random.RandomState) -> np.ndarray:
    """100 ... 500 points dropped in 1-7 clusters, each the nearest points of a random one
    (`corrupt_dropout_local`, l.119-138)."""
    num_points, num_clusters = pc.shape[0], rng.randint(1, 8)
    for k in _cluster_sizes(num_clusters, 100 * (level + 1), rng):
        pc = _shuffle(pc, rng)
        dist = np.sum((pc - pc[:1, :]) ** 2, axis=1, keepdims=True)
        pc = np.take_along_axis(pc, dist.argsort(axis=0)[::-1, :], axis=0)
        num_points -= k
        pc = pc[:num_points, :]
    return pc


def _add_global(pc: np.ndarray, level: int, rng: np.random.RandomState) -> np.ndarray:
    """10 ... 50 points added uniformly in the unit ball (`corrupt_add_global`, l.141-151)."""
    return np.concatenate([pc, _in_unit_ball(10 * (level + 1), rng)], axis=0)


def _add_local(pc: np.ndarray, level: int, rng: np.random.RandomState) -> np.ndarray:
    """100 ... 500 points added in 1-7 Gaussian clusters (sigma U(0.075, 0.125)) around points of the cloud;
    an added point p with |p|^2 > 1 becomes p / |p|^2 (`corrupt_add_local`, l.154-180)."""
    num_points, total = pc.shape[0], 100 * (level + 1)
    num_clusters = rng.randint(1, 8)
    sizes = _cluster_sizes(num_clusters, total, rng)
    pc = _shuffle(pc, rng)
    added, start = np.zeros_like(pc), 0
    for i, k in enumerate(sizes):
        sigma = rng.uniform(0.075, 0.125)
        added[start : start + k, :] = np.copy(pc[i : i + 1, :])
        added[start : start + k, :] = added[start : start + k, :] + sigma * rng.randn(
            *added[start : start + k].shape
        )
        start += k
    dist = np.sum(added**2, axis=1, keepdims=True).repeat(3, axis=1)
    added[dist > 1] = added[dist > 1] / dist[dist > 1]
    return np.concatenate([pc, added], axis=0)[: num_points + total]


CORRUPT: dict[str, Callable[[np.ndarray, int, np.random.RandomState], np.ndarray]] = {
    "scale": _scale,
    "jitter": _jitter,
    "rotate": _rotate,
    "dropout_global": _dropout_global,
    "dropout_local": _dropout_local,
    "add_global": _add_global,
    "add_local": _add_local,
}


def check_setting(corruption: str, level: int) -> None:
    if corruption not in CORRUPT:
        raise ConfigError(f"unknown corruption {corruption!r}; expected one of {', '.join(CORRUPTIONS)}")
    if not (isinstance(level, int) and 0 <= level < LEVELS):
        raise ConfigError(
            f"corruption level must be an integer 0-{LEVELS - 1} (the official severity index), got {level!r}"
        )


def corrupted_size(num_points: int, corruption: str, level: int) -> int:
    """How many points `corrupt` returns for a cloud of `num_points` (every cloud of a setting alike)."""
    check_setting(corruption, level)
    if corruption == "dropout_global":
        return int(num_points * (1 - [0.25, 0.375, 0.5, 0.625, 0.75][level]))
    if corruption == "dropout_local":
        return num_points - 100 * (level + 1)
    if corruption == "add_global":
        return num_points + 10 * (level + 1)
    if corruption == "add_local":  # the official buffer of added points holds at most num_points of them
        return num_points + min(100 * (level + 1), num_points)
    return num_points


def corrupt(points: np.ndarray, corruption: str, level: int, seed: int | np.random.RandomState) -> np.ndarray:
    """`(N, 3)` float32 points -> the cloud damaged by `corruption` at `level` (0-4), float32
    (`corrupted_size(N)` points), drawn from `RandomState(seed)`; computed in the official dtypes (float64
    where the official function is) and returned as float32, as the official loader reads the files."""
    check_setting(corruption, level)
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3 or not np.isfinite(points).all():
        raise ConfigError(f"corrupt takes (N, 3) finite points, got shape {points.shape}")
    if corrupted_size(len(points), corruption, level) < 1:
        raise ConfigError(f"{corruption} level {level} removes every point of a {len(points)}-point cloud")
    rng = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
    return CORRUPT[corruption](points.astype(np.float32), level, rng).astype(np.float32)


def cloud_seed(seed: int, corruption: str, level: int, index: int) -> int:
    """The seed of cloud `index` under one setting: the same cloud is damaged the same way by every run and
    checkpoint with `seed`, whatever else it corrupts."""
    entropy = [seed, CORRUPTIONS.index(corruption), level, index]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def scores(oa: dict[str, list[float]], clean_oa: float) -> dict:
    """The official scores (modelnetc_utils/eval.py l.33-67) from `oa[corruption]`, the five levels'
    accuracies as fractions, and `clean_oa`: `clean_oa` and each corruption's mean `OA` rounded to 3
    decimals, `CE` = (1 - OA) / (1 - OA_DGCNN), `RCE` = (OA_clean - OA) / (OA_clean_DGCNN - OA_DGCNN),
    each rounded to 3; `mCE`, `RmCE`, `mOA` their means over the corruptions, rounded to 3."""
    if missing := [c for c in CORRUPTIONS if c not in oa]:
        raise ConfigError(f"scores need every corruption's accuracies; missing {', '.join(missing)}")
    clean = round(clean_oa, 3)
    per: dict[str, dict[str, float]] = {}
    for c in CORRUPTIONS:
        if len(oa[c]) != LEVELS:
            raise ConfigError(f"scores need {LEVELS} accuracies per corruption; {c} has {len(oa[c])}")
        mean = round(sum(oa[c]) / len(oa[c]), 3)
        ce = (1 - mean) / (1 - DGCNN_OA[c])
        rce = (clean - mean) / (DGCNN_OA["clean"] - DGCNN_OA[c])
        per[c] = {"OA": round(mean, 3), "CE": round(ce, 3), "RCE": round(rce, 3)}
    overall = {k: round(sum(p[k] for p in per.values()) / len(per), 3) for k in ("OA", "CE", "RCE")}
    return {
        "clean_oa": clean,
        "corruptions": per,
        "mCE": overall["CE"],
        "RmCE": overall["RCE"],
        "mOA": overall["OA"],
    }


def cloud_values(correct: dict[str, np.ndarray], clean: np.ndarray) -> dict[str, np.ndarray]:
    """Per cloud, what the scores average over clouds, unrounded: each corruption's accuracy (the fraction
    of its five levels the cloud is classified right at), and the cloud's CE and RCE means (`mCE`,
    `RmCE`): a paired bootstrap over these compares two checkpoints on the same damaged clouds.
    `correct[c]`: `(5, M)` 1/0 per level and cloud; `clean`: `(M,)`."""
    out = {c: correct[c].mean(axis=0) for c in CORRUPTIONS}
    out["mCE"] = np.mean([(1 - out[c]) / (1 - DGCNN_OA[c]) for c in CORRUPTIONS], axis=0)
    out["RmCE"] = np.mean([(clean - out[c]) / (DGCNN_OA["clean"] - DGCNN_OA[c]) for c in CORRUPTIONS], axis=0)
    return out


def corrupted_sets(points: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """`(M, N, 3)` clean clouds -> each setting's damaged clouds (`SETTINGS`), `(M, corrupted_size(N), 3)`,
    cloud i under a setting drawn from `cloud_seed(seed, corruption, level, i)`."""
    return {
        f"{c}_{level}": np.stack(
            [corrupt(cloud, c, level, cloud_seed(seed, c, level, i)) for i, cloud in enumerate(points)]
        )
        for c in CORRUPTIONS
        for level in range(LEVELS)
    }


@torch.no_grad()
def classified_right(
    model: torch.nn.Module,
    clouds: np.ndarray,
    labels: np.ndarray,
    device: torch.device,
    precision: Precision = "float32",
    batch_size: int = 64,
) -> np.ndarray:
    """`(M,)` 1/0: whether `model` (clouds `(B, N, 3)` -> logits) classifies each of `clouds` `(M, N, 3)` as
    its label, the clouds fed as they are (the official evaluation's way: no resampling)."""
    model.eval()
    logits = batched_features(
        model, torch.from_numpy(np.ascontiguousarray(clouds)), device, batch_size, precision
    )
    return (logits.argmax(axis=1) == labels).astype(np.int64)


def accuracies(correct: dict[str, np.ndarray]) -> tuple[float, dict[str, list[float]]]:
    """Per-cloud outcomes of `clean` and every setting -> the clean accuracy and, per corruption, its five
    levels' accuracies (what `scores` takes)."""
    oa = {c: [float(correct[f"{c}_{level}"].mean()) for level in range(LEVELS)] for c in CORRUPTIONS}
    return float(correct["clean"].mean()), oa


def outcomes_by_corruption(correct: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`correct` per setting -> per corruption, `(5, M)` (what `cloud_values` takes)."""
    return {c: np.stack([correct[f"{c}_{level}"] for level in range(LEVELS)]) for c in CORRUPTIONS}
