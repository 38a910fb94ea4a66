"""3DETR evaluation speed per scene: the detector's forward at its paper sizes on 40,000 points (FPS to 2,048,
the ball query, the encoder, 256 queries, 8 decoder layers), then the official evaluation's parsing (empty
boxes removed by a hull test against the scene's points, same-class NMS) and AP bookkeeping, as evaluating
ScanNetV2's 312 validation scenes runs them.

    python benchmarks/detection.py [--encoder vanilla|masked|act] [--scenes 3] [--points 40000] [--device cpu]
        [--train-batch 2]

Random weights and a synthetic room (uniform points): the same compute as a trained model on ScanNet; the
parsing's cost grows with the boxes that survive, so it is timed on predictions that all pass the threshold.
`act` is the detect.scannet_act encoder (the paper-size student, 384 wide, 12 blocks, over 2,048 tokens).
With `--train-batch B`, one training step (forward, 3DETR's set criterion over every decoder layer,
backward) on B scenes of 10 boxes each is timed too, and the 1,080 epochs of ScanNet's 1,201 training scans
at batch 8 are projected from it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from act3d.data.scannet import MAX_BOXES
from act3d.eval.detection import average_precision, parse_predictions
from act3d.models.detr.criterion import CriterionConfig, detection_loss
from act3d.models.detr.model import Detector3DETR, DetrConfig
from act3d.models.student import StudentConfig
from act3d.ops.boxes import box_corners


def training_step_seconds(
    model: Detector3DETR, batch: int, points: int, device: str, steps: int = 2
) -> float:
    """Median seconds of a training step on `batch` synthetic scenes, each with 10 true boxes."""
    rng = np.random.default_rng(1)
    cloud = torch.from_numpy(rng.uniform([-4, -4, 0], [4, 4, 2.5], (batch, points, 3)).astype(np.float32))
    lo, hi = cloud.min(1).values, cloud.max(1).values
    centers = torch.from_numpy(
        rng.uniform([-3, -3, 0.5], [3, 3, 1.5], (batch, MAX_BOXES, 3)).astype(np.float32)
    )
    sizes = torch.full((batch, MAX_BOXES, 3), 0.8)
    present = torch.zeros(batch, MAX_BOXES)
    present[:, :10] = 1
    targets = {
        "gt_box_corners": box_corners(centers, sizes, torch.zeros(batch, MAX_BOXES)),
        "gt_box_centers_normalized": (centers - lo[:, None]) / (hi - lo)[:, None],
        "gt_box_sizes_normalized": sizes / (hi - lo)[:, None],
        "gt_box_sem_cls_label": torch.randint(0, 18, (batch, MAX_BOXES)),
        "gt_box_present": present,
        "gt_box_angles": torch.zeros(batch, MAX_BOXES),
        "gt_angle_class_label": torch.zeros(batch, MAX_BOXES, dtype=torch.int64),
        "gt_angle_residual_label": torch.zeros(batch, MAX_BOXES),
    }
    cloud, lo, hi = cloud.to(device), lo.to(device), hi.to(device)
    targets = {k: v.to(device) for k, v in targets.items()}
    model.train()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss, _ = detection_loss(model(cloud, lo, hi), targets, CriterionConfig())
        loss.backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="vanilla", choices=["vanilla", "masked", "act"])
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--points", type=int, default=40_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-batch", type=int, default=0, help="also time a training step on B scenes")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.encoder == "act":
        model = Detector3DETR(DetrConfig(encoder="act", enc_dim=384), StudentConfig())
    else:
        model = Detector3DETR(DetrConfig(encoder=args.encoder))
    model = model.to(args.device).eval()
    rng = np.random.default_rng(0)
    forward, parse = [], []
    for _ in range(args.scenes):
        points = torch.from_numpy(
            rng.uniform([-4, -4, 0], [4, 4, 2.5], (1, args.points, 3)).astype(np.float32)
        )
        points = points.to(args.device)
        lo, hi = points.min(1).values, points.max(1).values
        start = time.perf_counter()
        out = model.detect(points, point_cloud_dims_min=lo, point_cloud_dims_max=hi)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        forward.append(time.perf_counter() - start)
        start = time.perf_counter()
        objectness = torch.ones_like(out["objectness_prob"])  # every box past the threshold: the worst case
        preds = parse_predictions(
            out["box_corners"].cpu().numpy(),
            out["sem_cls_prob"].cpu().numpy(),
            objectness.cpu().numpy(),
            points.cpu().numpy(),
        )
        average_precision(preds, [[(0, c) for c in out["box_corners"][0, :8].cpu().numpy()]])
        parse.append(time.perf_counter() - start)
    row = {
        "encoder": args.encoder,
        "points": args.points,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "forward_s_per_scene": round(float(np.median(forward)), 2),
        "parse_and_ap_s_per_scene": round(float(np.median(parse)), 2),
    }
    row["val_312_scenes_min"] = round(
        312 * (row["forward_s_per_scene"] + row["parse_and_ap_s_per_scene"]) / 60, 1
    )
    if args.train_batch:
        step = training_step_seconds(model, args.train_batch, args.points, args.device)
        row |= {"train_batch": args.train_batch, "train_step_s": round(step, 2)}
        # ScanNet: 1,201 training scans, batch 8, 1,080 epochs (scripts/scannet_ep1080.sh)
        row["paper_training_days_at_this_speed"] = round(step * 8 / args.train_batch * 150 * 1080 / 86400, 1)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
