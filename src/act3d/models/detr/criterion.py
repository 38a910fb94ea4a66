"""3DETR's set criterion (facebookresearch/3detr @a5d1aad, `criterion.py`): every decoder layer's boxes are
matched one to one with the scene's true boxes (Hungarian, on class probability and generalized IoU costs),
then scored by a weighted sum of a class cross-entropy (background weighted down), the matched boxes' L1
centre distance, L1 size error, 1 − GIoU, and heading class and residual terms; the layers' losses add up.

GIoU is the axis-aligned one (`generalized_box3d_iou_tensor` with `rotated_boxes` False, box_util.py
l.517-621), which is what 3DETR computes for ScanNet, whose boxes have no heading; rotated targets (SUN
RGB-D) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from act3d.errors import InputError

EPS = 1e-8


@dataclass
class CriterionConfig:
    """scripts/scannet_ep1080.sh on main.py's defaults (l.86-101)."""

    matcher_cls_cost: float = 1.0
    matcher_giou_cost: float = 2.0
    matcher_center_cost: float = 0.0
    matcher_objectness_cost: float = 0.0
    loss_giou_weight: float = 1.0
    loss_sem_cls_weight: float = 1.0
    loss_no_object_weight: float = 0.25
    loss_angle_cls_weight: float = 0.1
    loss_angle_reg_weight: float = 0.5
    loss_center_weight: float = 5.0
    loss_size_weight: float = 1.0


def _volumes(corners: torch.Tensor) -> torch.Tensor:
    """`box3d_vol_tensor` (l.443-463): `(B, K, 8, 3)` -> `(B, K)`, three edge lengths clamped at sqrt(1e-6)."""
    b, k = corners.shape[:2]
    c = corners.view(-1, 8, 3)
    edge = [
        torch.sqrt((c[:, i, :] - c[:, j, :]).pow(2).sum(dim=1).clamp(min=1e-6))
        for i, j in ((0, 1), (1, 2), (0, 4))
    ]
    return (edge[0] * edge[1] * edge[2]).view(b, k)


def _enclosing_volumes(corners1: torch.Tensor, corners2: torch.Tensor) -> torch.Tensor:
    """`enclosing_box3d_vol` (l.466-514): the axis-aligned box around each pair, `(B, K1, K2)`."""
    c1, c2 = corners1.clone(), corners2.clone()
    c1[:, :, :, 1] *= -1
    c2[:, :, :, 1] *= -1
    spans = []
    for axis in range(3):
        a_min, a_max = c1[..., axis].min(dim=2).values, c1[..., axis].max(dim=2).values
        b_min, b_max = c2[..., axis].min(dim=2).values, c2[..., axis].max(dim=2).values
        if axis == 1:  # the official y bounds are the max of maxima and the min of minima, taken as written
            lo = torch.max(a_max[:, :, None], b_max[:, None, :])
            hi = torch.min(a_min[:, :, None], b_min[:, None, :])
        else:
            lo = torch.min(a_min[:, :, None], b_min[:, None, :])
            hi = torch.max(a_max[:, :, None], b_max[:, None, :])
        spans.append(torch.abs(hi - lo))
    return spans[0] * spans[1] * spans[2]


def generalized_box3d_iou(
    corners1: torch.Tensor, corners2: torch.Tensor, nums_k2: torch.Tensor
) -> torch.Tensor:
    """GIoU `(B, K1, K2)` of axis-aligned boxes' corners `(B, K1, 8, 3)` and `(B, K2, 8, 3)` (upright-camera
    frame), zero past each scene's `nums_k2` true boxes and for malformed boxes (l.517-621)."""
    b, k1, k2 = corners1.shape[0], corners1.shape[1], corners2.shape[1]
    ymax = torch.min(corners1[:, :, 0, 1][:, :, None], corners2[:, :, 0, 1][:, None, :])
    ymin = torch.max(corners1[:, :, 4, 1][:, :, None], corners2[:, :, 4, 1][:, None, :])
    height = (ymax - ymin).clamp(min=0)
    rect1 = corners1[:, :, [3, 2, 1, 0], :][:, :, :, [0, 2]]
    rect2 = corners2[:, :, [3, 2, 1, 0], :][:, :, :, [0, 2]]
    lt = torch.max(rect1[:, :, 1][:, :, None, :], rect2[:, :, 1][:, None, :, :])
    rb = torch.min(rect1[:, :, 3][:, :, None, :], rect2[:, :, 3][:, None, :, :])
    wh = (rb - lt).clamp(min=0)
    inter_areas = (wh[:, :, :, 0] * wh[:, :, :, 1]).view(b, k1, k2)
    present = (
        torch.arange(k2, device=corners1.device)[None, None, :] < nums_k2.to(corners1.device)[:, None, None]
    )
    inter_areas = inter_areas * present
    enclosing = _enclosing_volumes(corners1, corners2)
    sum_vols = _volumes(corners1).clamp(min=EPS)[:, :, None] + _volumes(corners2).clamp(min=EPS)[:, None, :]
    good = (enclosing > 2 * EPS) * (sum_vols > 4 * EPS)
    inter_vols = inter_areas * height
    union = (sum_vols - inter_vols).clamp(min=EPS)
    gious = inter_vols / union - (1 - union / enclosing)
    return gious * good * present.float()


def huber(error: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """`huber_loss` (utils/misc.py l.25-36)."""
    quadratic = torch.clamp(torch.abs(error), max=delta)
    return 0.5 * quadratic**2 + delta * (torch.abs(error) - quadratic)


@torch.no_grad()
def match(
    outputs: dict, targets: dict, cfg: CriterionConfig, nactual: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`Matcher.forward` (l.26-86): per scene, the Hungarian assignment of queries to its true boxes ->
    each query's true-box index `(B, Q)` and whether it is matched `(B, Q)` (float)."""
    b, q = outputs["sem_cls_prob"].shape[:2]
    labels = targets["gt_box_sem_cls_label"].unsqueeze(1).expand(b, q, -1)
    cost = (
        (
            cfg.matcher_cls_cost * -torch.gather(outputs["sem_cls_prob"], 2, labels)
            + cfg.matcher_objectness_cost * -outputs["objectness_prob"].unsqueeze(-1)
            + cfg.matcher_center_cost * outputs["center_dist"].detach()
            + cfg.matcher_giou_cost * -outputs["gious"].detach()
        )
        .cpu()
        .numpy()
    )
    device = outputs["sem_cls_prob"].device
    inds = torch.zeros([b, q], dtype=torch.int64, device=device)
    matched = torch.zeros([b, q], dtype=torch.float32, device=device)
    for i in range(b):
        if nactual[i] > 0:
            rows, cols = (
                torch.from_numpy(x).long().to(device) for x in linear_sum_assignment(cost[i, :, : nactual[i]])
            )
            inds[i, rows], matched[i, rows] = cols, 1
    return inds, matched


def layer_loss(
    outputs: dict, targets: dict, cfg: CriterionConfig, nactual: torch.Tensor, num_boxes: float
) -> tuple[torch.Tensor, dict]:
    """`SetCriterion.single_output_forward` (l.319-353): one decoder layer's weighted loss and its terms."""
    if torch.any(targets["gt_box_angles"] > 0):
        raise InputError(
            "rotated target boxes (SUN RGB-D) are not supported: act3d's 3DETR GIoU is axis-aligned"
        )
    outputs = dict(outputs)
    outputs["gious"] = generalized_box3d_iou(outputs["box_corners"], targets["gt_box_corners"], nactual)
    outputs["center_dist"] = torch.cdist(
        outputs["center_normalized"], targets["gt_box_centers_normalized"], p=1
    )
    inds, matched = match(outputs, targets, cfg, nactual)
    logits = outputs["sem_cls_logits"]
    label = torch.gather(targets["gt_box_sem_cls_label"], 1, inds)
    label[matched.int() == 0] = logits.shape[-1] - 1
    weights = torch.ones(logits.shape[-1], device=logits.device)
    weights[-1] = cfg.loss_no_object_weight
    terms = {"loss_sem_cls": F.cross_entropy(logits.transpose(2, 1), label, weights, reduction="mean")}
    boxes = float(nactual.sum().item())
    if boxes > 0:
        angle_label = torch.gather(targets["gt_angle_class_label"], 1, inds)
        angle_cls = F.cross_entropy(outputs["angle_logits"].transpose(2, 1), angle_label, reduction="none")
        residual = outputs["angle_residual_normalized"]
        target_residual = torch.gather(
            targets["gt_angle_residual_label"] / (np.pi / residual.shape[-1]), 1, inds
        )
        one_hot = torch.zeros_like(residual, dtype=torch.float32).scatter_(2, angle_label.unsqueeze(-1), 1)
        angle_reg = huber(torch.sum(residual * one_hot, -1) - target_residual, delta=1.0)
        terms["loss_angle_cls"] = (angle_cls * matched).sum() / num_boxes
        terms["loss_angle_reg"] = (angle_reg * matched).sum() / num_boxes
        center = torch.gather(outputs["center_dist"], 2, inds.unsqueeze(-1)).squeeze(-1)
        terms["loss_center"] = (center * matched).sum() / num_boxes
        sizes = targets["gt_box_sizes_normalized"]
        sizes = torch.stack([torch.gather(sizes[:, :, x], 1, inds) for x in range(sizes.shape[-1])], dim=-1)
        terms["loss_size"] = (
            F.l1_loss(outputs["size_normalized"], sizes, reduction="none").sum(dim=-1) * matched
        ).sum() / num_boxes
    else:
        zero = torch.zeros((), device=logits.device)
        terms |= {"loss_angle_cls": zero, "loss_angle_reg": zero, "loss_center": zero, "loss_size": zero}
    giou = torch.gather(1 - outputs["gious"], 2, inds.unsqueeze(-1)).squeeze(-1)
    terms["loss_giou"] = (giou * matched).sum() / num_boxes
    total = torch.zeros((), device=logits.device)
    weighted = {}
    for name in ("loss_giou", "loss_sem_cls", "loss_angle_cls", "loss_angle_reg", "loss_center", "loss_size"):
        weight = getattr(cfg, f"{name}_weight")
        if weight > 0:
            weighted[name] = terms[name] * weight
            total = total + weighted[name]
    return total, weighted


def detection_loss(predictions: dict, targets: dict, cfg: CriterionConfig) -> tuple[torch.Tensor, dict]:
    """`SetCriterion.forward` (l.355-375): the last decoder layer's loss plus every earlier layer's, and the
    terms (an earlier layer's suffixed `_<i>`). `num_boxes` is this process's true boxes, at least 1 (the
    official average over processes equals it on one process)."""
    nactual = targets["gt_box_present"].sum(axis=1).long()
    num_boxes = max(float(nactual.sum().item()), 1.0)
    loss, terms = layer_loss(predictions["outputs"], targets, cfg, nactual, num_boxes)
    for i, aux in enumerate(predictions.get("aux_outputs", [])):
        aux_loss, aux_terms = layer_loss(aux, targets, cfg, nactual, num_boxes)
        loss = loss + aux_loss
        terms |= {f"{k}_{i}": v for k, v in aux_terms.items()}
    return loss, terms
