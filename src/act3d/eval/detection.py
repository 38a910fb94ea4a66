"""3D detection average precision as 3DETR computes it (facebookresearch/3detr @a5d1aad, `utils/eval_det.py`,
`utils/box_util.py` `box3d_iou`, `utils/ap_calculator.py` `APCalculator.compute_metrics`; VoteNet's, after
py-faster-rcnn's VOC code).

Boxes are `(8, 3)` corners in 3DETR's upright-camera frame (y down; `act3d.ops.boxes`). Per class, detections
of every scene are sorted by score and each is a true positive when its best IoU with a ground-truth box of
its scene is strictly above the threshold and that box is not yet taken; AP is the area under the
precision envelope (VOC 2010+). A class counts in the mean when the ground truth *or* the predictions hold
it (a class only predicted has AP 0); the mean is taken in float32, as the official code takes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import ConvexHull, Delaunay, QhullError

from act3d.ops.boxes import to_depth_np

Prediction = tuple[int, np.ndarray, float]  # (class, corners (8, 3), score)
Truth = tuple[int, np.ndarray]  # (class, corners (8, 3))


def _clip(subject: list, clip: list) -> list | None:
    """Sutherland-Hodgman: the part of polygon `subject` inside the convex, counter-clockwise polygon `clip`
    (`polygon_clip`, box_util.py l.34-82), or None when nothing is left."""

    def inside(p) -> bool:
        return (cp2[0] - cp1[0]) * (p[1] - cp1[1]) > (cp2[1] - cp1[1]) * (p[0] - cp1[0])

    def crossing() -> list:
        dc, dp = [cp1[0] - cp2[0], cp1[1] - cp2[1]], [s[0] - e[0], s[1] - e[1]]
        n1, n2 = cp1[0] * cp2[1] - cp1[1] * cp2[0], s[0] * e[1] - s[1] * e[0]
        n3 = 1.0 / (dc[0] * dp[1] - dc[1] * dp[0])
        return [(n1 * dp[0] - n2 * dc[0]) * n3, (n1 * dp[1] - n2 * dc[1]) * n3]

    out, cp1 = subject, clip[-1]
    for cp2 in clip:
        points, out = out, []
        s = points[-1]
        for e in points:
            if inside(e):
                if not inside(s):
                    out.append(crossing())
                out.append(e)
            elif inside(s):
                out.append(crossing())
            s = e
        cp1 = cp2
        if not out:
            return None
    return out


def _area(x: np.ndarray, y: np.ndarray) -> float:
    """The shoelace area (`poly_area`, l.84-86)."""
    return 0.5 * np.abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def _volume(c: np.ndarray) -> float:
    """`box3d_vol` (l.102-107): the product of three edge lengths."""
    a = np.sqrt(np.sum((c[0, :] - c[1, :]) ** 2))
    b = np.sqrt(np.sum((c[1, :] - c[2, :]) ** 2))
    return a * b * np.sqrt(np.sum((c[0, :] - c[4, :]) ** 2))


def box3d_iou(corners1: np.ndarray, corners2: np.ndarray) -> float:
    """The 3D IoU of two boxes' corners (`box3d_iou`, l.116-141): their bird's-eye footprints (x, z)
    intersected as polygons, times the overlap of their heights along y. Touching footprints, whose
    intersection has no area (the official ConvexHull raises there), intersect in 0."""
    rect1 = [(corners1[i, 0], corners1[i, 2]) for i in range(3, -1, -1)]
    rect2 = [(corners2[i, 0], corners2[i, 2]) for i in range(3, -1, -1)]
    inter = _clip(rect1, rect2)
    try:
        inter_area = ConvexHull(inter).volume if inter is not None else 0.0
    except QhullError:
        inter_area = 0.0
    ymax, ymin = min(corners1[0, 1], corners2[0, 1]), max(corners1[4, 1], corners2[4, 1])
    inter_vol = inter_area * max(0.0, ymax - ymin)
    return inter_vol / (_volume(corners1) + _volume(corners2) - inter_vol)


def _voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """The area under the precision envelope (`voc_ap`, eval_det.py l.39-54)."""
    mrec, mpre = np.concatenate(([0.0], rec, [1.0])), np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def _class_ap(pred: dict, gt: dict, threshold: float) -> tuple[np.ndarray, float]:
    """One class's recall curve and AP (`eval_det_cls`, l.66-155): `pred` scene -> [(corners, score)],
    `gt` scene -> [corners]."""
    truth = {scene: {"boxes": np.array(boxes), "taken": [False] * len(boxes)} for scene, boxes in gt.items()}
    npos = sum(len(boxes) for boxes in gt.values())
    for scene in pred:
        truth.setdefault(scene, {"boxes": np.array([]), "taken": []})
    scenes = [scene for scene in pred for _ in pred[scene]]
    confidence = np.array([score for scene in pred for _, score in pred[scene]])
    boxes = np.array([box for scene in pred for box, _ in pred[scene]])
    order = np.argsort(-confidence)
    boxes, scenes = boxes[order, ...], [scenes[x] for x in order]
    tp, fp = np.zeros(len(scenes)), np.zeros(len(scenes))
    for d, scene in enumerate(scenes):
        record, box, best = truth[scene], boxes[d, ...].astype(float), -np.inf
        candidates = record["boxes"].astype(float)
        for j in range(candidates.shape[0] if candidates.size > 0 else 0):
            iou = box3d_iou(box, candidates[j, ...])
            if iou > best:
                best, match = iou, j
        if best > threshold and not record["taken"][match]:
            tp[d], record["taken"][match] = 1.0, 1
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = np.zeros_like(tp) if npos == 0 else tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return rec, _voc_ap(rec, prec)


def average_precision(
    pred_map_cls: Sequence[Sequence[Prediction]],
    gt_map_cls: Sequence[Sequence[Truth]],
    iou_thresholds: Sequence[float] = (0.25, 0.5),
    class_names: Sequence[str] | None = None,
) -> dict:
    """Per scene, 3DETR's prediction list `(class, corners, score)` and ground-truth list `(class, corners)`
    -> `{"mAP25": ..., "mAP50": ..., "AR25": ..., "AR50": ..., "per_class": {"AP25": {name: ap}, ...}}`
    (`APCalculator.compute_metrics`, ap_calculator.py l.370-395, with `eval_det_multiprocessing`,
    eval_det.py l.214-272), for each threshold `t` keyed `round(100 t)`."""
    if len(pred_map_cls) != len(gt_map_cls):
        raise ValueError(f"{len(pred_map_cls)} scenes of predictions but {len(gt_map_cls)} of ground truth")
    pred: dict = {}
    gt: dict = {}
    for scene, detections in enumerate(pred_map_cls):  # a predicted class counts even without ground truth
        for cls, box, score in detections:
            pred.setdefault(cls, {}).setdefault(scene, []).append((box, score))
            gt.setdefault(cls, {}).setdefault(scene, [])
    for scene, truths in enumerate(gt_map_cls):
        for cls, box in truths:
            gt.setdefault(cls, {}).setdefault(scene, []).append(box)
    out: dict = {"per_class": {}}
    for t in iou_thresholds:
        key = round(100 * t)
        ap, recall = {}, {}
        for cls in gt:
            rec, ap[cls] = _class_ap(pred[cls], gt[cls], t) if cls in pred else (0, 0)
            recall[cls] = rec[-1] if isinstance(rec, np.ndarray) and len(rec) else 0
        values = np.array(list(ap.values()), dtype=np.float32)
        values[np.isnan(values)] = 0
        out[f"mAP{key}"] = float(values.mean()) if len(values) else 0.0
        out[f"AR{key}"] = float(np.mean([recall[c] for c in sorted(ap)])) if ap else 0.0
        names = {c: class_names[c] if class_names is not None else str(c) for c in ap}
        out["per_class"][f"AP{key}"] = {names[c]: float(ap[c]) for c in sorted(ap)}
    return out


def _nms_same_class(boxes: np.ndarray, threshold: float) -> list[int]:
    """`nms_3d_faster_samecls` (utils/nms.py l.120-162): rows `(x1, y1, z1, x2, y2, z2, score, class)`,
    highest score first; a box is dropped when its IoU with a kept box of its class exceeds `threshold`."""
    x1, y1, z1, x2, y2, z2, score, cls = (boxes[:, i] for i in range(8))
    area = (x2 - x1) * (y2 - y1) * (z2 - z1)
    order, pick = np.argsort(score), []
    while order.size != 0:
        last, i = order.size, order[-1]
        pick.append(i)
        rest = order[: last - 1]
        extent = [
            np.maximum(0, np.minimum(hi[i], hi[rest]) - np.maximum(lo[i], lo[rest]))
            for lo, hi in ((x1, x2), (y1, y2), (z1, z2))
        ]
        inter = extent[0] * extent[1] * extent[2]
        overlap = inter / (area[i] + area[rest] - inter) * (cls[i] == cls[rest])
        order = np.delete(order, np.concatenate(([last - 1], np.where(overlap > threshold)[0])))
    return pick


def parse_predictions(
    box_corners: np.ndarray,
    sem_cls_prob: np.ndarray,
    objectness_prob: np.ndarray,
    points: np.ndarray,
    remove_empty_box: bool = True,
    nms_iou: float = 0.25,
    conf_thresh: float = 0.05,
) -> list[list[Prediction]]:
    """The detector's last-layer boxes -> per scene its prediction list for `average_precision`, as 3DETR's
    evaluation makes it (`parse_predictions` under `get_ap_config_dict`'s defaults, ap_calculator.py
    l.39-269): boxes with fewer than 5 of the scene's points inside (a Delaunay hull of the corners, as
    `extract_pc_in_box3d`) dropped, keeping the most objectness-confident if none is left; 3D NMS among
    boxes of the same most likely class at IoU 0.25; then every class of every kept box with objectness
    above `conf_thresh` as one prediction, scored class probability × objectness.

    `box_corners (B, Q, 8, 3)` (upright-camera frame), `sem_cls_prob (B, Q, C)`, `objectness_prob (B, Q)`,
    `points (B, N, 3)`."""
    corners, cls_prob, obj = (np.asarray(x) for x in (box_corners, sem_cls_prob, objectness_prob))
    cloud = np.asarray(points)[:, :, 0:3]
    b, k = corners.shape[:2]
    nonempty = np.ones((b, k))
    if remove_empty_box:
        for i in range(b):
            for j in range(k):
                if np.sum(Delaunay(to_depth_np(corners[i, j])).find_simplex(cloud[i]) >= 0) < 5:
                    nonempty[i, j] = 0
            if nonempty[i].sum() == 0:
                nonempty[i, obj[i].argmax()] = 1
    pred_cls = np.argmax(cls_prob, -1)
    keep = np.zeros((b, k))
    for i in range(b):
        rows = np.zeros((k, 8))
        rows[:, 0:3], rows[:, 3:6] = corners[i].min(axis=1), corners[i].max(axis=1)
        rows[:, 6], rows[:, 7] = obj[i], pred_cls[i]
        candidates = np.where(nonempty[i, :] == 1)[0]
        keep[i, candidates[_nms_same_class(rows[nonempty[i, :] == 1, :], nms_iou)]] = 1
    return [
        [
            (c, corners[i, j], cls_prob[i, j, c] * obj[i, j])
            for c in range(cls_prob.shape[-1])
            for j in range(k)
            if keep[i, j] == 1 and obj[i, j] > conf_thresh
        ]
        for i in range(b)
    ]
