import math

import numpy as np
import pytest
import torch

from act3d.data import transforms
from act3d.data.default import CLASSES, DefaultDataSpec, build_default, clean_object, scanned_object
from act3d.data.h5clouds import H5Clouds

TINY = DefaultDataSpec(seed=3, num_points=256, pretrain_per_class=1, train_per_class=2, test_per_class=1)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACT3D_CACHE", str(tmp_path))
    return tmp_path


def test_build_is_deterministic_and_cached(cache):
    root = build_default(TINY, workers=1)
    assert root.parent == cache and len(CLASSES) >= 12
    train = H5Clouds(root / "scan_train.h5", CLASSES)
    assert len(train) == 2 * len(CLASSES) and train[0].points.shape == (256, 3)
    first = train.points.copy()
    stamp = (root / "meta.json").stat().st_mtime_ns
    assert build_default(TINY) == root and (root / "meta.json").stat().st_mtime_ns == stamp  # cached
    again = build_default(TINY, force=True, workers=1)
    np.testing.assert_array_equal(H5Clouds(again / "scan_train.h5", CLASSES).points, first)
    other = build_default(
        DefaultDataSpec(seed=4, num_points=256, pretrain_per_class=1, train_per_class=2, test_per_class=1),
        workers=1,
    )
    assert other != root


@pytest.mark.parametrize("cls", CLASSES)
def test_objects_are_normalised_and_varied(cls):
    rng = np.random.default_rng(0)
    a, b = clean_object(cls, 512, rng), clean_object(cls, 512, rng)
    assert a.shape == (512, 3) and np.isfinite(a).all()
    assert np.linalg.norm(a, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    assert abs(np.ptp(a, 0) - np.ptp(b, 0)).max() > 1e-3  # two draws differ
    scan = scanned_object(cls, 512, rng)
    assert scan.shape == (512, 3) and np.linalg.norm(scan, axis=1).max() == pytest.approx(1.0, abs=1e-5)


def test_transforms_shapes_and_effects():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(4, 100, 3)
    moved = transforms.scale_and_translate(pts, generator=g)
    assert moved.shape == pts.shape and not torch.allclose(moved, pts)
    rotated = transforms.rotate_about_up(pts, generator=g)
    torch.testing.assert_close(rotated.norm(dim=-1), pts.norm(dim=-1))  # rotations keep lengths
    torch.testing.assert_close(rotated[..., 1], pts[..., 1])  # and the up coordinate
    r = transforms.rotation_about_up(torch.tensor([math.pi / 2]))
    torch.testing.assert_close(
        r[0] @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 0, -1]), atol=1e-6, rtol=0
    )
    scaled = transforms.scale_and_shift(pts, generator=g)
    ratio = (scaled - scaled.mean(1, keepdim=True)).norm(dim=-1) / (pts - pts.mean(1, keepdim=True)).norm(
        dim=-1
    )
    assert (
        ((ratio.amax(1) - ratio.amin(1)) < 1e-4).all()
        and (ratio >= 0.8 - 1e-5).all()
        and (ratio <= 1.25 + 1e-5).all()
    )


def test_two_processes_build_the_default_cache_once(tmp_path):
    """Every rank of a torchrun job (or two demos) opens the default data at once: one builds, the others
    wait for it and read what it built."""
    import os
    import subprocess
    import sys

    code = (
        "import logging; logging.basicConfig(level=logging.INFO);"
        "from act3d.data.default import DefaultDataSpec, build_default;"
        "build_default(DefaultDataSpec(num_points=64, pretrain_per_class=2, train_per_class=2,"
        " test_per_class=1), workers=1)"
    )
    env = {**os.environ, "ACT3D_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)]
    procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True))
    logs = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    assert sum(log.count("built the default dataset") for log in logs) == 1, logs
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert len(entries) == 2 and entries[1].endswith(".lock")  # the data and its lock; no half-built copy
