"""`act3d data ...`: build the default dataset, check a dataset on disk, render a cloud."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from act3d.cli.common import positive_int
from act3d.data.formats import FORMATS

log = logging.getLogger("act3d")


def _check(args: argparse.Namespace) -> int:
    from act3d.data.dataset import DataConfig, describe, open_source
    from act3d.data.files import read_cloud
    from act3d.data.modelnet import modelnet40_fewshot

    if args.format == "file":
        points = read_cloud(args.path)
        summary = {
            "name": args.path,
            "samples": 1,
            "points": len(points),
            "bbox_min": points.min(0).round(4).tolist(),
            "bbox_max": points.max(0).round(4).tolist(),
        }
    elif args.format == "modelnet40-fewshot":
        train, test = modelnet40_fewshot(args.path, args.way, args.shot, args.fold)
        summary = {"train": describe(train, args.limit), "test": describe(test, args.limit)}
    else:
        variant = args.variant or ("pb_t50_rs" if args.format == "scanobjectnn" else "clean")
        cfg = DataConfig(format=args.format, root=args.path, variant=variant)
        summary = describe(open_source(cfg, args.split), args.limit)
    print(json.dumps(summary, indent=2))
    return 0


def _build_default(args: argparse.Namespace) -> int:
    from act3d.data.default import build_default

    start = time.perf_counter()
    path = build_default(force=args.force)
    meta = json.loads((path / "meta.json").read_text())
    took = time.perf_counter() - start
    print(f"default dataset: {path}")
    print(f"  classes ({len(meta['classes'])}): {', '.join(meta['classes'])}")
    print("  " + ", ".join(f"{k}: {v}" for k, v in meta["counts"].items()))
    print(f"  built in {meta['build_seconds']}s" + ("" if took > 1 else " (cached)"))
    return 0


def _show(args: argparse.Namespace) -> int:
    from act3d.data.files import read_cloud
    from act3d.viz import render_clouds

    points = read_cloud(args.file)
    out = render_clouds(
        [points], args.out, titles=[f"{Path(args.file).name} ({len(points)} points)"], ncols=1, size=3
    )
    print(f"wrote {out}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="build, check and look at datasets")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    check = sub.add_parser(
        "check", help="summarise a dataset on disk, or say precisely what is wrong with it"
    )
    check.add_argument("path", help="dataset root folder (or a single file with --format file)")
    check.add_argument("--format", required=True, choices=[*FORMATS, "file"])
    check.add_argument("--split", default="train", choices=["pretrain", "train", "test"])
    check.add_argument("--variant", help="scanobjectnn: obj_bg | obj_only | pb_t50_rs; default: clean | scan")
    check.add_argument("--way", type=positive_int, default=5, help="few-shot: classes per episode")
    check.add_argument("--shot", type=positive_int, default=10, help="few-shot: examples per class")
    check.add_argument("--fold", type=int, default=0, help="few-shot: fold number")
    check.add_argument("--limit", type=positive_int, help="read only the first LIMIT samples")
    check.set_defaults(run=_check)

    build = sub.add_parser(
        "build-default", help="generate the embedded default dataset (cached) and say where it is"
    )
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.set_defaults(run=_build_default)

    show = sub.add_parser("show", help="render a point-cloud or mesh file to a PNG")
    show.add_argument("file")
    show.add_argument("--out", required=True, help="PNG to write")
    show.set_defaults(run=_show)
