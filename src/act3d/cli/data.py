"""`act3d data ...`: prepare a class folder, write few-shot episodes, build the default dataset, check a
dataset on disk, render a cloud."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from act3d.cli.common import VARIANT_HELP, dataset_variant, output_folder, positive_int
from act3d.data.formats import FORMATS
from act3d.errors import Act3dError

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
    elif args.format == "scannet-detection":
        from act3d.data.scannet import describe_scenes

        meta = args.meta or Path(args.path).parent / "meta_data"
        summary = describe_scenes(args.path, meta, "val" if args.split == "test" else args.split, args.limit)
    elif args.format == "modelnet40-fewshot":
        train, test = modelnet40_fewshot(args.path, args.way, args.shot, args.fold)
        summary = {"train": describe(train, args.limit), "test": describe(test, args.limit)}
    else:
        cfg = DataConfig(format=args.format, root=args.path, variant=dataset_variant(args))
        summary = describe(open_source(cfg, args.split), args.limit)
    print(json.dumps(summary, indent=2, ensure_ascii=False))  # class names as people write them
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from act3d.data.folders import PrepareOptions, prepare_class_folder

    options = PrepareOptions(args.points, args.z_up, args.seed, args.test_fraction)
    report = prepare_class_folder(
        args.src, output_folder(args.out), options, args.workers, not args.no_progress, args.overwrite
    )
    width = max(len(c) for c in report.classes + ["class"])
    print(f"{'class':<{width}} {'train':>6} {'test':>6} {'skipped':>8}")
    for name in report.classes:
        c = report.counts[name]
        print(f"{name:<{width}} {c['train']:>6} {c['test']:>6} {c['skipped']:>8}")
    total = {k: sum(c[k] for c in report.counts.values()) for k in ("train", "test", "skipped")}
    print(f"{'total':<{width}} {total['train']:>6} {total['test']:>6} {total['skipped']:>8}")
    for name, c in report.counts.items():
        if c["train"] + c["test"] == 0:
            print(
                f"warning: class {name!r} has no usable file ({c['skipped']} skipped); it stays in the class "
                "list (labels stay stable) with no samples"
            )
    for entry in report.skipped[:20]:
        print(f"skipped {entry['source']}: {entry['reason']}")
    if len(report.skipped) > 20:
        print(f"... and {len(report.skipped) - 20} more skipped files, listed in manifest.json")
    if report.ignored:
        print(f"ignored {len(report.ignored)} files that are not shapes, e.g. {report.ignored[0]}")
    print(
        f"{report.out}: {len(report.classes)} classes ({report.layout}); sampled {report.sampled} files, "
        f"reused {report.reused}, in {report.seconds:.1f}s; read it with "
        f"--set data.format=class-folders --set data.root={report.out}"
    )
    return 0


def _fewshot(args: argparse.Namespace) -> int:
    from act3d.data.dataset import DataConfig, open_source
    from act3d.data.fewshot import write_fewshot_folds

    out = output_folder(args.out)
    settings = [(w, s) for w in args.way for s in args.shot]
    existing = [f"{w}way_{s}shot" for w, s in settings if any((out / f"{w}way_{s}shot").glob("*.pkl"))]
    if existing and not args.overwrite:
        raise Act3dError(f"--out {out}: already holds {existing[0]}/; choose a new --out or pass --overwrite")
    cfg = DataConfig(format=args.format, root=args.root, variant=dataset_variant(args))
    summary = write_fewshot_folds(
        open_source(cfg, "train"), open_source(cfg, "test"), out, settings, args.folds, args.points, args.seed
    )
    print(
        f"wrote {len(summary['episodes'])} episodes to {out} ({', '.join(f'{w}way_{s}shot' for w, s in settings)}"
        f" x {args.folds} folds); read them with --set data.format=modelnet40-fewshot --set data.root={out}"
    )
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
    check.add_argument("--format", required=True, choices=[*FORMATS, "scannet-detection", "file"])
    check.add_argument(
        "--meta",
        help="scannet-detection: the folder of scannetv2_{train,val}.txt (default PATH/../meta_data)",
    )
    check.add_argument("--split", default="train", choices=["pretrain", "train", "test"])
    check.add_argument("--variant", help=VARIANT_HELP)
    check.add_argument("--way", type=positive_int, default=5, help="few-shot: classes per episode")
    check.add_argument("--shot", type=positive_int, default=10, help="few-shot: examples per class")
    check.add_argument("--fold", type=int, default=0, help="few-shot: fold number")
    check.add_argument("--limit", type=positive_int, help="read only the first LIMIT samples")
    check.set_defaults(run=_check)

    prep = sub.add_parser(
        "prepare",
        help="turn a folder of meshes or clouds sorted by class into a dataset (data.format class-folders)",
        description="SRC is <class>/{train,test}/<file> (the Princeton ModelNet archives) or <class>/<file> "
        "(split per class by seed). Meshes (.off .obj .stl .ply) are sampled area-weighted with normals, "
        "clouds (.npy .npz .txt .xyz .ply) taken as they are; each is centred, scaled to the unit sphere "
        "and stored in farthest-point order. Re-running re-samples only changed files.",
    )
    prep.add_argument("--src", required=True, help="class folder to read")
    prep.add_argument("--out", required=True, help="folder to write (manifest.json, clouds/)")
    prep.add_argument("--points", type=positive_int, default=8192, help="points per cloud (default 8192)")
    prep.add_argument(
        "--z-up",
        action="store_true",
        help="rotate z-up shapes (Princeton OFF) to the y-up of the official files",
    )
    prep.add_argument(
        "--test-fraction", type=float, default=0.2, help="flat layout: test share per class (default 0.2)"
    )
    prep.add_argument("--seed", type=int, default=0, help="sampling and split seed (default 0)")
    prep.add_argument("--workers", type=positive_int, help="processes (default: every available core)")
    prep.add_argument(
        "--overwrite", action="store_true", help="replace a dataset prepared from another --src"
    )
    prep.add_argument("--no-progress", action="store_true", help="no progress bars")
    prep.set_defaults(run=_prepare)

    few = sub.add_parser(
        "fewshot",
        help="write few-shot episodes of any labelled dataset in the official ModelNetFewshot layout",
        description="Episodes <out>/{way}way_{shot}shot/{fold}.pkl: WAY classes, SHOT training clouds and "
        "20 test clouds per class, drawn by seed from the dataset's train and test splits.",
    )
    few.add_argument("--format", required=True, choices=FORMATS)
    few.add_argument("--root", help="dataset folder (not needed for the default dataset)")
    few.add_argument("--variant", help=VARIANT_HELP)
    few.add_argument("--out", required=True, help="folder to write")
    few.add_argument("--way", type=positive_int, nargs="+", default=[5, 10])
    few.add_argument("--shot", type=positive_int, nargs="+", default=[10, 20])
    few.add_argument("--folds", type=positive_int, default=10)
    few.add_argument("--points", type=positive_int, default=2048, help="points kept per cloud (default 2048)")
    few.add_argument("--seed", type=int, default=0)
    few.add_argument("--overwrite", action="store_true", help="replace episodes already in --out")
    few.set_defaults(run=_fewshot)

    build = sub.add_parser(
        "build-default", help="generate the embedded default dataset (cached) and say where it is"
    )
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.set_defaults(run=_build_default)

    show = sub.add_parser("show", help="render a point-cloud or mesh file to a PNG")
    show.add_argument("file")
    show.add_argument("--out", required=True, help="PNG to write")
    show.set_defaults(run=_show)
