"""3DETR's AP calculator (utils/eval_det.py, utils/box_util.py box3d_iou), restated here with the IoU of
axis-aligned boxes computed in closed form, against act3d.eval.detection."""

import numpy as np
import pytest

from act3d.eval.detection import average_precision, box3d_iou
from act3d.ops.boxes import box_corners_np


def _box(center, size, angle=0.0):
    return box_corners_np(np.asarray(size, float), np.asarray(angle, float), np.asarray(center, float))


def _aligned_iou(c1, s1, c2, s2):
    lo, hi = np.maximum(c1 - s1 / 2, c2 - s2 / 2), np.minimum(c1 + s1 / 2, c2 + s2 / 2)
    inter = np.prod(np.clip(hi - lo, 0, None))
    return inter / (np.prod(s1) + np.prod(s2) - inter)


def _official_ap(preds, gts, thr):
    """eval_det.py l.66-155 and l.214-272 (without the pool), the AP of ap_calculator.py l.375-383; IoU of
    axis-aligned boxes given as (class, (centre, size), score)."""
    pred, gt = {}, {}
    for img, dets in enumerate(preds):
        for cls, box, score in dets:
            pred.setdefault(cls, {}).setdefault(img, []).append((box, score))
            gt.setdefault(cls, {}).setdefault(img, [])
    for img, truths in enumerate(gts):
        for cls, box in truths:
            gt.setdefault(cls, {}).setdefault(img, []).append(box)
    ap = {}
    for cls in gt:
        if cls not in pred:
            ap[cls] = 0
            continue
        taken = {img: [False] * len(b) for img, b in gt[cls].items()}
        npos = sum(len(b) for b in gt[cls].values())
        flat = [(img, box, score) for img, d in pred[cls].items() for box, score in d]
        conf = np.array([f[2] for f in flat])
        tp, fp = [], []
        for k in np.argsort(-conf):
            img, (c, s), _ = flat[k]
            ious = [_aligned_iou(c, s, gc, gs) for gc, gs in gt[cls].get(img, [])]
            j = int(np.argmax(ious)) if ious else None
            hit = j is not None and ious[j] > thr and not taken[img][j]
            if hit:
                taken[img][j] = True
            tp.append(float(hit))
            fp.append(1.0 - float(hit))
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos if npos else np.zeros_like(tp)
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        mrec, mpre = np.concatenate(([0.0], rec, [1.0])), np.concatenate(([0.0], prec, [0.0]))
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        i = np.where(mrec[1:] != mrec[:-1])[0]
        ap[cls] = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    return np.array(list(ap.values()), dtype=np.float32).mean(), ap


def _scenes(seed, n=6):
    rng = np.random.default_rng(seed)
    preds_c, preds, gts_c, gts = [], [], [], []
    for _ in range(n):
        k = rng.integers(1, 6)
        centers, sizes = rng.uniform(-3, 3, (k, 3)), rng.uniform(0.3, 1.5, (k, 3))
        classes = rng.integers(0, 4, k)  # class 5 is never true, class 4 true but never predicted
        extra = [(4, rng.uniform(-3, 3, 3), rng.uniform(0.3, 1.5, 3))] if rng.random() < 0.5 else []
        gts_c.append(
            [(int(c), (m, s)) for c, m, s in zip(classes, centers, sizes)]
            + [(c, (m, s)) for c, m, s in extra]
        )
        dets = []
        for c, m, s in zip(classes, centers, sizes):
            for _ in range(rng.integers(0, 3)):
                dets.append(
                    (int(c), (m + rng.normal(0, 0.15, 3), s * rng.uniform(0.7, 1.3, 3)), float(rng.random()))
                )
        dets += [(5, (rng.uniform(-3, 3, 3), rng.uniform(0.3, 1.5, 3)), float(rng.random()))]
        preds_c.append(dets)
    preds = [[(c, _box(m, s), p) for c, (m, s), p in dets] for dets in preds_c]
    gts = [[(c, _box(m, s)) for c, (m, s) in truths] for truths in gts_c]
    return preds_c, preds, gts_c, gts


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_equals_the_official_calculator(seed):
    preds_c, preds, gts_c, gts = _scenes(seed)
    ours = average_precision(preds, gts, class_names=["a", "b", "c", "d", "e", "f"])
    for thr, key in ((0.25, "mAP25"), (0.5, "mAP50")):
        mean, per_class = _official_ap(preds_c, gts_c, thr)
        assert ours[key] == pytest.approx(float(mean), abs=1e-6)
        assert ours["per_class"][f"AP{round(100 * thr)}"] == pytest.approx(
            {"abcdef"[c]: float(v) for c, v in per_class.items()}, abs=1e-9
        )
    assert ours["per_class"]["AP25"]["f"] == 0 and ours["per_class"]["AP25"].get("e", 0) == 0  # counted, zero


def test_iou_of_aligned_boxes_is_the_closed_form_and_rotated_boxes_agree_with_sampling():
    rng = np.random.default_rng(0)
    for _ in range(50):
        c1, c2 = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)
        s1, s2 = rng.uniform(0.5, 2, 3), rng.uniform(0.5, 2, 3)
        assert box3d_iou(_box(c1, s1), _box(c2, s2)) == pytest.approx(_aligned_iou(c1, s1, c2, s2), abs=1e-12)
    a, b = _box([0, 0, 0], [2, 1, 1], 0.4), _box([0.3, 0.2, 0.1], [1.5, 1.2, 0.8], -0.3)
    pts = rng.uniform(-1.6, 1.6, (400_000, 3))

    def inside(corners):  # the box's own axes: corners 0-1 (z), 1-2 (x), 0-4 (y)
        o, ex, ez, ey = corners[2], corners[1] - corners[2], corners[0] - corners[1], corners[4] - corners[0]
        q = pts - o
        return np.all([(0 <= q @ e / (e @ e)) & (q @ e / (e @ e) <= 1) for e in (ex, ez)], axis=0) & (
            np.abs((pts - corners[0]) @ ey / (ey @ ey) - 0.5) <= 0.5
        )

    ia, ib = inside(a), inside(b)
    assert box3d_iou(a, b) == pytest.approx((ia & ib).sum() / (ia | ib).sum(), abs=0.01)


def test_no_prediction_gives_zero_and_a_mismatch_of_scenes_is_refused():
    _, _, _, gts = _scenes(0, n=2)
    out = average_precision([[], []], gts)
    assert out["mAP25"] == 0.0 and out["AR25"] == 0.0
    with pytest.raises(ValueError, match="2 scenes of predictions but 1 of ground truth"):
        average_precision([[], []], gts[:1])


def _official_parse(corners, cls_prob, obj, pc, nms_iou=0.25, conf=0.05):
    """ap_calculator.py parse_predictions (l.39-238) under get_ap_config_dict's defaults (remove_empty_box,
    use_3d_nms, cls_nms, per_class_proposal), with nms.py nms_3d_faster_samecls (l.120-162)."""
    from scipy.spatial import Delaunay

    B, K = corners.shape[:2]
    nonempty = np.ones((B, K))
    for i in range(B):
        for j in range(K):
            box = corners[i, j].copy()
            box[:, [0, 1, 2]] = box[:, [0, 2, 1]]
            box[:, 2] *= -1
            if len(pc[i][Delaunay(box).find_simplex(pc[i]) >= 0]) < 5:
                nonempty[i, j] = 0
        if nonempty[i].sum() == 0:
            nonempty[i, obj[i].argmax()] = 1
    pred_cls = np.argmax(cls_prob, -1)
    mask = np.zeros((B, K))
    for i in range(B):
        b3 = np.zeros((K, 8))
        for j in range(K):
            b3[j, :3] = [np.min(corners[i, j, :, a]) for a in range(3)]
            b3[j, 3:6] = [np.max(corners[i, j, :, a]) for a in range(3)]
            b3[j, 6], b3[j, 7] = obj[i, j], pred_cls[i, j]
        boxes = b3[nonempty[i] == 1]
        area = np.prod(boxes[:, 3:6] - boxes[:, 0:3], axis=1)
        order, pick = np.argsort(boxes[:, 6]), []
        while order.size:
            last, top = order.size, order[-1]
            pick.append(top)
            lo = np.maximum(boxes[top, :3], boxes[order[: last - 1], :3])
            hi = np.minimum(boxes[top, 3:6], boxes[order[: last - 1], 3:6])
            inter = np.prod(np.maximum(0, hi - lo), axis=1)
            o = (
                inter
                / (area[top] + area[order[: last - 1]] - inter)
                * (boxes[top, 7] == boxes[order[: last - 1], 7])
            )
            order = np.delete(order, np.concatenate(([last - 1], np.where(o > nms_iou)[0])))
        mask[i, np.where(nonempty[i] == 1)[0][pick]] = 1
    return [
        [
            (ii, corners[i, j], cls_prob[i, j, ii] * obj[i, j])
            for ii in range(cls_prob.shape[-1])
            for j in range(K)
            if mask[i, j] == 1 and obj[i, j] > conf
        ]
        for i in range(B)
    ]


def test_parse_predictions_equals_the_official_parser():
    from act3d.eval.detection import parse_predictions

    rng = np.random.default_rng(3)
    b, k, n, c = 2, 24, 3000, 5
    pc = rng.uniform([-3, -3, 0], [3, 3, 2], (b, n, 3)).astype(np.float32)
    centers = rng.uniform([-2.5, -2.5, 0.3], [2.5, 2.5, 1.5], (b, k, 3))
    centers[:, 12:] = centers[:, :12] + rng.normal(0, 0.1, (b, 12, 3))  # overlapping pairs for the NMS
    centers[:, 0] = [10, 10, 10]  # an empty box
    sizes = rng.uniform(0.2, 1.5, (b, k, 3))
    corners = box_corners_np(sizes, np.zeros((b, k)), centers).astype(np.float32)
    cls_prob = rng.dirichlet(np.ones(c), (b, k)).astype(np.float32)
    obj = rng.uniform(0, 1, (b, k)).astype(np.float32)
    ours, theirs = parse_predictions(corners, cls_prob, obj, pc), _official_parse(corners, cls_prob, obj, pc)
    assert [len(s) for s in ours] == [len(s) for s in theirs] and len(ours[0]) > 0
    for scene_ours, scene_theirs in zip(ours, theirs):
        for (c1, b1, s1), (c2, b2, s2) in zip(scene_ours, scene_theirs):
            assert c1 == c2 and np.array_equal(b1, b2) and s1 == s2
    kept = {tuple(x[1].ravel()) for x in ours[0]}
    assert tuple(corners[0, 0].ravel()) not in kept and len(kept) < k - 1  # the empty box and suppressed ones
