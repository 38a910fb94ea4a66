"""Classification and segmentation metrics, by the standard conventions of the field."""

from __future__ import annotations

import numpy as np


def confusion_matrix(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """`(C, C)` counts; rows are true classes, columns predictions."""
    pred, truth = np.asarray(pred).reshape(-1), np.asarray(truth).reshape(-1)
    return np.bincount(truth * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def overall_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of correct predictions (OA)."""
    pred, truth = np.asarray(pred).reshape(-1), np.asarray(truth).reshape(-1)
    return float((pred == truth).mean()) if len(truth) else 0.0


def mean_class_accuracy(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    """Mean over the classes present in `truth` of their recall (mAcc)."""
    cm = confusion_matrix(pred, truth, num_classes)
    present = cm.sum(1) > 0
    return float((np.diag(cm)[present] / cm.sum(1)[present]).mean())


def iou_per_class(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """IoU of each class over all points; NaN for a class absent from both prediction and truth."""
    cm = confusion_matrix(pred, truth, num_classes).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, np.diag(cm) / union, np.nan)


def shape_part_iou(pred: np.ndarray, truth: np.ndarray, parts: list[int]) -> float:
    """Mean IoU over one shape's category parts; a part absent from both prediction and truth counts as 1."""
    ious = []
    for part in parts:
        p, t = pred == part, truth == part
        union = (p | t).sum()
        ious.append(1.0 if union == 0 else (p & t).sum() / union)
    return float(np.mean(ious))


def part_segmentation_miou(
    preds: list[np.ndarray], truths: list[np.ndarray], categories: list[int], part_ids: list[list[int]]
) -> tuple[float, float]:
    """ShapeNetPart `(class mIoU, instance mIoU)`: per-shape part mIoU averaged per category then over
    categories, and over all shapes."""
    per_shape = [shape_part_iou(p, t, part_ids[c]) for p, t, c in zip(preds, truths, categories)]
    by_cat: dict[int, list[float]] = {}
    for c, v in zip(categories, per_shape):
        by_cat.setdefault(c, []).append(v)
    return float(np.mean([np.mean(v) for v in by_cat.values()])), float(np.mean(per_shape))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (the few-shot tables' convention)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())
