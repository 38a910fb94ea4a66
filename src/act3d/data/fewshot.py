"""Few-shot episodes from any labelled dataset, and writing them in the official few-shot layout.

The official layout (Point-BERT's `ModelNetFewshot`, read by `ModelNetFewShot` in the ACT code):
`<root>/{way}way_{shot}shot/{fold}.pkl`, each a pickled dict `{"train": [...], "test": [...]}` of
`(points (N, C) float32, episode label 0..way-1, original label)` tuples; `shot` training clouds and 20
test clouds per class. act3d reads it as `data.format: modelnet40-fewshot`.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from act3d.atomic import atomic_file
from act3d.data.dataset import label_of
from act3d.data.sample import CloudSource
from act3d.errors import DataError

QUERIES_PER_CLASS = 20


def fewshot_key(way: int, shot: int) -> str:
    """The name of a few-shot setting in results: `5w10s`."""
    return f"{way}w{shot}s"


def episode_rng(seed: int, way: int, shot: int, fold: int) -> np.random.Generator:
    """The generator of one episode: the same episode for features (`eval.probe.fewshot`) and pickles."""
    return np.random.default_rng([seed, way, shot, fold])


def draw_fewshot_episode(
    labels: np.ndarray, test_labels: np.ndarray, way: int, shot: int, queries: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick `way` classes, `shot` support samples each from the training labels and up to `queries` test
    samples each; returns (classes, support indices, query indices)."""
    eligible = [c for c in np.unique(labels) if (labels == c).sum() >= shot and (test_labels == c).sum() > 0]
    if len(eligible) < way:
        raise DataError(
            f"only {len(eligible)} classes have {shot} training samples and test samples; "
            f"cannot draw {way}-way episodes"
        )
    classes = rng.choice(eligible, way, replace=False)
    support = np.concatenate([rng.choice(np.flatnonzero(labels == c), shot, replace=False) for c in classes])
    query = np.concatenate([rng.permutation(np.flatnonzero(test_labels == c))[:queries] for c in classes])
    return classes, support, query


def _labels(source: CloudSource) -> np.ndarray:
    return np.array([label_of(source, i) for i in range(len(source))])


def write_fewshot_folds(
    train: CloudSource,
    test: CloudSource,
    out: Path,
    settings: list[tuple[int, int]],
    folds: int = 10,
    points: int = 2048,
    seed: int = 0,
) -> dict:
    """Write `folds` episodes per (way, shot) setting into `out` in the official layout; each cloud keeps
    its first `points` points (prepared class folders and the ModelNet40 `.dat` files are stored in
    farthest-point order, so these are well spread). Also writes `fewshot.json`, naming every episode's
    classes. Returns that summary."""
    train_y, test_y = _labels(train), _labels(test)
    summary = {
        "train_source": train.name,
        "test_source": test.name,
        "points": points,
        "seed": seed,
        "episodes": {},
    }
    drawn = {  # every episode first: a setting the data cannot fill fails before anything is written
        (way, shot, fold): draw_fewshot_episode(
            train_y, test_y, way, shot, QUERIES_PER_CLASS, episode_rng(seed, way, shot, fold)
        )
        for way, shot in settings
        for fold in range(folds)
    }
    for way, shot in settings:
        folder = out / f"{way}way_{shot}shot"
        folder.mkdir(parents=True, exist_ok=True)
        for fold in range(folds):
            classes, support, query = drawn[way, shot, fold]
            remap = {int(c): i for i, c in enumerate(classes)}
            episode = {
                split: [
                    (source[i].points[:points].astype(np.float32), remap[int(y[i])], int(y[i]))
                    for i in indices
                ]
                for split, source, y, indices in (
                    ("train", train, train_y, support),
                    ("test", test, test_y, query),
                )
            }
            with atomic_file(folder / f"{fold}.pkl", "wb") as f:
                pickle.dump(episode, f, protocol=4)
            summary["episodes"][f"{way}way_{shot}shot/{fold}"] = [train.class_names[int(c)] for c in classes]
    (out / "fewshot.json").write_text(json.dumps(summary, indent=1))
    return summary
