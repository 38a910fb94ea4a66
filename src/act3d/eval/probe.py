"""Frozen-feature protocols: the linear SVM probe and few-shot classification.

Features are the student's tokens over all patches, max- and mean-pooled (`(M, 2W)`, `act3d.eval.features`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from act3d.data.dataset import DataConfig, open_source, stack_clouds
from act3d.data.fewshot import QUERIES_PER_CLASS, draw_fewshot_episode, episode_rng, fewshot_key
from act3d.data.modelnet import modelnet40_fewshot
from act3d.data.sample import CloudSource
from act3d.eval.features import extract_features
from act3d.eval.metrics import mean_class_accuracy, mean_std, overall_accuracy
from act3d.models import zoo
from act3d.models.precision import Precision
from act3d.models.student import StudentEncoder
from act3d.ops.grouping import PatchConfig

log = logging.getLogger(__name__)
SVM_C_GRID = [0.001, 0.01, 0.1, 1.0, 10.0]


def source_features(
    encoder: StudentEncoder,
    patching: PatchConfig,
    source: CloudSource,
    num_points: int,
    precision: Precision = "float32",
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen features `(M, 2W)` and labels `(M,)` of every cloud of a source, resampled to `num_points`."""
    points, labels = stack_clouds(source, num_points)
    return extract_features(encoder, points, patching, precision=precision), labels.numpy()


def split_features(
    encoder: StudentEncoder, patching: PatchConfig, data: DataConfig, precision: Precision = "float32"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Features and labels of a dataset's train and test splits: `(train_x, train_y, test_x, test_y,
    class_names)`."""
    train, test = open_source(data, "train"), open_source(data, "test")
    train_x, train_y = source_features(encoder, patching, train, data.num_points, precision)
    test_x, test_y = source_features(encoder, patching, test, data.num_points, precision)
    return train_x, train_y, test_x, test_y, list(train.class_names)


def _svm_pipeline(c: float):
    # libsvm's exact solver: fast at these sample counts and free of liblinear's convergence limits
    return make_pipeline(StandardScaler(), SVC(C=c, kernel="linear"))


def fewshot_correct(
    support_x: np.ndarray, support_y: np.ndarray, query_x: np.ndarray, query_y: np.ndarray
) -> np.ndarray:
    """One few-shot episode: a linear SVM (C=1) fitted on the support features; 1/0 per query cloud, whether
    it classified that cloud right."""
    return (_svm_pipeline(1.0).fit(support_x, support_y).predict(query_x) == query_y).astype(int)


def _setting_scores(way: int, shot: int, correct: list[np.ndarray]) -> dict:
    """A few-shot setting's folds: their accuracies, mean ± std, and each query cloud's outcome (`correct`,
    one list per fold: what paired comparisons resample)."""
    accs = [float(c.mean()) for c in correct]
    mean, std = mean_std(accs)
    return {
        "way": way,
        "shot": shot,
        "mean": mean,
        "std": std,
        "folds": accs,
        "correct": [c.tolist() for c in correct],
    }


def svm_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    seed: int = 0,
    folds: int = 3,
) -> dict:
    """Linear SVM on frozen features. C is chosen by stratified cross-validation on the training split
    alone; the test split is touched once, for the final score."""
    counts = np.bincount(train_y)
    folds = max(2, min(folds, int(counts[counts > 0].min())))
    search = GridSearchCV(
        _svm_pipeline(1.0),
        {"svc__C": SVM_C_GRID},
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        n_jobs=1,
    )
    search.fit(train_x, train_y)
    pred = search.predict(test_x)
    return {
        "test_acc": overall_accuracy(pred, test_y),
        "test_macc": mean_class_accuracy(pred, test_y, num_classes),
        "C": float(search.best_params_["svc__C"]),
        "val_acc": float(search.best_score_),
        "correct": (pred == test_y).astype(int).tolist(),  # per test cloud: the unit of paired comparisons
    }


def fewshot(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    settings: list[tuple[int, int]],
    folds: int = 10,
    queries: int = QUERIES_PER_CLASS,
    seed: int = 0,
) -> dict:
    """Few-shot accuracy per (way, shot) over `folds` deterministic episodes, with a linear SVM (C=1) on
    frozen features; returns `{"5w10s": {"mean":..., "std":..., "folds": [...], "correct": [...]}, ...}`."""

    def episode(way: int, shot: int, fold: int) -> np.ndarray:
        rng = episode_rng(seed, way, shot, fold)
        classes, support, query = draw_fewshot_episode(train_y, test_y, way, shot, queries, rng)
        remap = {c: i for i, c in enumerate(classes)}
        ys, yq = (
            np.array([remap[c] for c in train_y[support]]),
            np.array([remap[c] for c in test_y[query]]),
        )
        return fewshot_correct(train_x[support], ys, test_x[query], yq)

    return _over_episodes(settings, folds, episode)


def fewshot_folds(
    checkpoint: str,
    root: str,
    settings: list[tuple[int, int]],
    folds: int = 10,
    precision: Precision = "float32",
) -> dict:
    """Few-shot accuracy of a student checkpoint on the official fold pickles (`data.modelnet
    .modelnet40_fewshot`, `root/{way}way_{shot}shot/{fold}.pkl`), as `fewshot` returns it."""
    encoder, arch = zoo.load_student(checkpoint)
    patching, num_points = zoo.patch_config(arch), arch["num_points"]

    def episode(way: int, shot: int, fold: int) -> np.ndarray:
        train, test = modelnet40_fewshot(root, way, shot, fold)
        return fewshot_correct(
            *source_features(encoder, patching, train, num_points, precision),
            *source_features(encoder, patching, test, num_points, precision),
        )

    return _over_episodes(settings, folds, episode)


def _over_episodes(
    settings: list[tuple[int, int]], folds: int, episode: Callable[[int, int, int], np.ndarray]
) -> dict:
    """`episode(way, shot, fold)`, each fold's per-query correctness, over every setting and fold -> the
    scores per setting, keyed `5w10s`."""
    return {
        fewshot_key(way, shot): _setting_scores(
            way, shot, [episode(way, shot, fold) for fold in range(folds)]
        )
        for way, shot in settings
    }
