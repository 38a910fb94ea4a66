"""Tiny datasets written in exactly the official on-disk formats (folder names, keys, dtypes, pickles)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np

RNG = np.random.default_rng(0)


def cloud(n: int, cols: int = 3) -> np.ndarray:
    return RNG.normal(size=(n, cols)).astype(np.float32)


def write_shapenet55(root: Path, per_split: int = 3) -> Path:
    base = root / "ShapeNet55-34"
    (base / "shapenet_pc").mkdir(parents=True)
    (base / "ShapeNet-55").mkdir()
    for split in ("train", "test"):
        names = [f"0269115{i % 2}-model{split}{i}.npy" for i in range(per_split)]
        for name in names:
            np.save(base / "shapenet_pc" / name, cloud(8192))
        (base / "ShapeNet-55" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return base


def write_modelnet40(root: Path, classes=("airplane", "night_stand", "chair"), per_class: int = 2) -> Path:
    base = root / "modelnet40_normal_resampled"
    base.mkdir(parents=True)
    (base / "modelnet40_shape_names.txt").write_text("\n".join(classes) + "\n")
    dat = {}
    for split in ("train", "test"):
        ids, clouds, labels = [], [], []
        for label, cls in enumerate(classes):
            (base / cls).mkdir(exist_ok=True)
            for k in range(per_class):
                shape_id = f"{cls}_{k + 1 + (100 if split == 'test' else 0):04d}"
                data = cloud(200, 6)
                np.savetxt(base / cls / f"{shape_id}.txt", data, delimiter=",", fmt="%.6f")
                ids.append(shape_id)
                clouds.append(cloud(8192, 6))
                labels.append(np.array([label], dtype=np.int64))
        (base / f"modelnet40_{split}.txt").write_text("\n".join(ids) + "\n")
        dat[split] = (clouds, labels)
        with open(base / f"modelnet40_{split}_8192pts_fps.dat", "wb") as f:
            pickle.dump([clouds, labels], f)
    return base


def write_fewshot(root: Path, way: int = 5, shot: int = 10, folds: int = 2, queries: int = 4) -> Path:
    base = root / "ModelNetFewshot"
    folder = base / f"{way}way_{shot}shot"
    folder.mkdir(parents=True)
    for fold in range(folds):
        episode = {
            "train": [(cloud(1024), c, 0) for c in range(way) for _ in range(shot)],
            "test": [(cloud(1024), c, 0) for c in range(way) for _ in range(queries)],
        }
        with open(folder / f"{fold}.pkl", "wb") as f:
            pickle.dump(episode, f)
    return base


def write_scanobjectnn(root: Path, count: int = 6) -> Path:
    base = root / "h5_files"
    for folder in ("main_split", "main_split_nobg"):
        (base / folder).mkdir(parents=True)
        for split in ("training", "test"):
            names = [f"{split}_objectdataset.h5"] + (
                [f"{split}_objectdataset_augmentedrot_scale75.h5"] if folder == "main_split" else []
            )
            for name in names:
                with h5py.File(base / folder / name, "w") as f:
                    f.create_dataset("data", data=RNG.normal(size=(count, 2048, 3)).astype(np.float32))
                    f.create_dataset("label", data=(np.arange(count) % 15).astype(np.uint8))
    return base


SHAPENETPART_CATS = {"Airplane": ("02691156", [0, 1, 2, 3]), "Mug": ("03797390", [36, 37])}


def write_shapenetpart(root: Path, per_cat: int = 2) -> Path:
    base = root / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    (base / "train_test_split").mkdir(parents=True)
    (base / "synsetoffset2category.txt").write_text(
        "".join(f"{c}\t{s}\n" for c, (s, _) in SHAPENETPART_CATS.items())
    )
    lists = {"train": [], "val": [], "test": []}
    for synset, parts in SHAPENETPART_CATS.values():
        (base / synset).mkdir()
        for split in lists:
            for k in range(per_cat):
                shape_id = f"{split}{k}{synset[-3:]}"
                data = np.concatenate(
                    [cloud(300, 6), RNG.choice(parts, size=(300, 1)).astype(np.float32)], axis=1
                )
                np.savetxt(base / synset / f"{shape_id}.txt", data, fmt="%.6f")
                lists[split].append(f"shape_data/{synset}/{shape_id}")
    for split, entries in lists.items():
        (base / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(entries))
    return base


def write_s3dis(root: Path, areas=(1, 5), rooms: int = 2) -> Path:
    base = root / "stanford_indoor3d"
    base.mkdir(parents=True)
    for area in areas:
        for r in range(rooms):
            n = 5000
            xyz = RNG.uniform(0, [6, 5, 3], size=(n, 3))
            rgb = RNG.integers(0, 256, size=(n, 3))
            label = RNG.integers(0, 13, size=(n, 1))
            np.save(
                base / f"Area_{area}_office_{r + 1}.npy",
                np.concatenate([xyz, rgb, label], axis=1).astype(np.float32),
            )
    return base


def write_tiny_scan_h5(root: Path, count: int = 16, points: int = 96, classes: int = 15) -> Path:
    """A small ScanObjectNN-layout folder of smooth blobs, for training-loop tests."""
    base = root / "h5_files"
    rng = np.random.default_rng(1)
    for folder in ("main_split", "main_split_nobg"):
        (base / folder).mkdir(parents=True, exist_ok=True)
        for split in ("training", "test"):
            for name in (f"{split}_objectdataset.h5", f"{split}_objectdataset_augmentedrot_scale75.h5"):
                labels = np.arange(count) % classes
                u = rng.normal(size=(count, points, 3))
                u /= np.linalg.norm(u, axis=-1, keepdims=True)
                stretch = np.stack([np.ones(count), 0.5 + (labels % 3) / 3, np.ones(count)], axis=1)[
                    :, None, :
                ]
                data = u * (1 + 0.3 * labels[:, None, None] / classes) * stretch
                with h5py.File(base / folder / name, "w") as f:
                    f.create_dataset("data", data=data.astype(np.float32))
                    f.create_dataset("label", data=labels.astype(np.uint8))
    return base


def write_scannet_detection(
    root: Path, scenes: int = 3, points: int = 2000, seed: int = 0
) -> tuple[Path, Path]:
    """A ScanNet detection folder as VoteNet's batch_load_scannet_data.py writes it (per scan `_vert.npy`
    (N, 6) float32, `_ins_label.npy`, `_sem_label.npy`, `_bbox.npy` (K, 7)) and a metadata folder with the
    split lists; returns (data folder, metadata folder)."""
    rng = np.random.default_rng(seed)
    data, meta = root / "scannet_train_detection_data", root / "meta_data"
    data.mkdir(parents=True)
    meta.mkdir(parents=True)
    names = [f"scene{i:04d}_00" for i in range(scenes)]
    for i, name in enumerate(names):
        xyz = rng.uniform([-3, -3, 0], [3, 3, 2.5], size=(points, 3)).astype(np.float32)
        rgb = rng.integers(0, 255, size=(points, 3)).astype(np.float32)
        k = 2 + i
        centers = rng.uniform([-2, -2, 0.3], [2, 2, 1.5], size=(k, 3))
        sizes = rng.uniform(0.3, 1.5, size=(k, 3))
        nyu = rng.choice([3, 4, 5, 7, 33, 39], size=k)
        np.save(data / f"{name}_vert.npy", np.concatenate([xyz, rgb], 1))
        np.save(data / f"{name}_ins_label.npy", rng.integers(0, k + 1, size=points).astype(np.uint32))
        np.save(data / f"{name}_sem_label.npy", rng.choice([1, 2, 3, 4, 5], size=points).astype(np.uint32))
        np.save(data / f"{name}_bbox.npy", np.concatenate([centers, sizes, nyu[:, None]], 1))
    (meta / "scannetv2_train.txt").write_text("\n".join(names[:-1] + ["scene9999_00"]) + "\n")
    (meta / "scannetv2_val.txt").write_text(names[-1] + "\n")
    return data, meta
