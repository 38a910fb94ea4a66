"""3DETR evaluation speed per scene: the detector's forward at its paper sizes on 40,000 points (FPS to 2,048,
the ball query, the encoder, 256 queries, 8 decoder layers), then the official evaluation's parsing (empty
boxes removed by a hull test against the scene's points, same-class NMS) and AP bookkeeping, as evaluating
ScanNetV2's 312 validation scenes runs them.

    python benchmarks/detection.py [--encoder vanilla|masked] [--scenes 3] [--points 40000] [--device cpu]

Random weights and a synthetic room (uniform points): the same compute as a trained model on ScanNet; the
parsing's cost grows with the boxes that survive, so it is timed on predictions that all pass the threshold.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from act3d.eval.detection import average_precision, parse_predictions
from act3d.models.detr.model import Detector3DETR, DetrConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="vanilla", choices=["vanilla", "masked"])
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--points", type=int, default=40_000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = Detector3DETR(DetrConfig(encoder=args.encoder)).to(args.device).eval()
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
    print(json.dumps(row))


if __name__ == "__main__":
    main()
