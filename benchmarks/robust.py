"""Corruption robustness speed: damaging the embedded default data's test split at all 35 ModelNet-C
settings (`act3d.eval.robust.corrupted_sets`, 1,024 points per clean cloud) and scoring a classifier of the
CPU demo's size on the clean and the 35 damaged sets (`classified_right`), as `act3d eval robust` and
`act3d demo --robust` run them.

    python benchmarks/robust.py [--preset cpu] [--batch 64] [--device cpu|cuda] [--clouds N]

The classifier has random weights (the same compute as a trained one), so the benchmark needs no checkpoint.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from act3d.config import load_config
from act3d.data.dataset import DataConfig, open_source, stack_clouds
from act3d.eval.robust import CLEAN_POINTS, classified_right, corrupted_sets
from act3d.models.classifier import ClassifierHead, PointClassifier
from act3d.models.student import StudentEncoder
from act3d.train.finetune import FinetuneRunConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", help="the fine-tuning preset whose model is scored")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clouds", type=int, default=0, help="the first N test clouds only (0: all)")
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = load_config(FinetuneRunConfig, "finetune", args.preset)
    source = open_source(DataConfig(format="default", variant="scan", num_points=CLEAN_POINTS), "test")
    clean, labels = stack_clouds(source, CLEAN_POINTS)
    clean, labels = clean.numpy(), labels.numpy()
    if args.clouds:
        clean, labels = clean[: args.clouds], labels[: args.clouds]
    model = (
        PointClassifier(StudentEncoder(cfg.student), ClassifierHead(15), cfg.patching).to(args.device).eval()
    )

    start = time.perf_counter()
    sets = {"clean": clean, **corrupted_sets(clean, seed=0)}
    corrupt_s = time.perf_counter() - start
    start = time.perf_counter()
    for clouds in sets.values():
        classified_right(model, clouds, labels, torch.device(args.device), batch_size=args.batch)
    score_s = time.perf_counter() - start
    print(
        json.dumps(
            {
                "preset": args.preset,
                "clouds": len(clean),
                "sets": len(sets),
                "points": CLEAN_POINTS,
                "device": args.device,
                "threads": torch.get_num_threads(),
                "corrupt_s": round(corrupt_s, 1),
                "score_s": round(score_s, 1),
                "total_s": round(corrupt_s + score_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
