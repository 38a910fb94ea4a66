"""`act3d eval robust`: a fine-tuned classifier on the clean test clouds and on the 35 ModelNet-C corruptions
of them (`act3d.eval.robust`): the official files as distributed, or any dataset act3d reads, corrupted
here with a recorded seed."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from act3d.cli.common import (
    VARIANT_HELP,
    add_compare_arg,
    add_precision_arg,
    compare_to,
    dataset_variant,
    eval_output,
    positive_int,
)
from act3d.cli.summary import RobustSummary, ScoreRow
from act3d.errors import Act3dError
from act3d.eval.robust import CLEAN_POINTS

log = logging.getLogger("act3d")


def _source(args: argparse.Namespace) -> tuple[str, str | None]:
    """`--data` (a ModelNet-C folder, a prepared class folder, or `default`), else `--format` / `--root`."""
    from act3d.data.modelnetc import is_modelnet_c

    if args.data is None:
        if args.format == "modelnet-c" and not args.root:
            raise Act3dError(
                "--format modelnet-c needs --root, the folder of clean.h5 and <corruption>_<level>.h5"
            )
        return args.format, args.root
    if args.root or args.format != "default":
        raise Act3dError("give the data either as --data or as --format/--root, not both")
    if args.data == "default":
        return "default", None
    if not Path(args.data).is_dir():
        raise Act3dError(
            f"--data {args.data}: no such folder; expected a ModelNet-C folder (clean.h5, <corruption>_<level>.h5), "
            "a folder written by `act3d data prepare`, or `default`"
        )
    return ("modelnet-c" if is_modelnet_c(args.data) else "class-folders"), args.data


def _clean_split(fmt: str, root: str | None, variant: str, args: argparse.Namespace, class_names: list[str]):
    """The test split of a dataset act3d reads, as `(M, N, 3)` float32 clouds and `(M,)` labels."""
    from act3d.data.dataset import DataConfig, open_source, stack_clouds

    cfg = DataConfig(format=fmt, root=root, variant=variant, num_points=args.num_points)
    source = open_source(cfg, "test")
    if len(source.class_names) != len(class_names):
        raise Act3dError(
            f"the data has {len(source.class_names)} classes, the classifier {args.checkpoint} "
            f"{len(class_names)}; score a classifier fine-tuned on this data"
        )
    points, labels = stack_clouds(source, args.num_points)
    return points.numpy().astype(np.float32), labels.numpy()


def _check_sizes(sizes: dict[str, int], patching) -> None:
    need = max(patching.num_groups, patching.group_size)
    if small := {k: n for k, n in sizes.items() if n < need}:
        name, n = min(small.items(), key=lambda kv: kv[1])
        raise Act3dError(
            f"{name} clouds hold {max(n, 0)} points, fewer than the classifier's patches need ({need}); give "
            "more points per cloud (--num-points)"
        )


def _draws(
    args: argparse.Namespace, model
) -> tuple[Callable[[int], dict[str, np.ndarray]], np.ndarray, dict]:
    """What is scored: `draw(seed)` -> the clean and the 35 damaged sets, the labels, and the protocol two
    runs must share to pair. The official files are one draw; any other data is corrupted here per seed."""
    from act3d.data.modelnetc import read_modelnet_c
    from act3d.eval.robust import SETTINGS, corrupted_sets, corrupted_size

    fmt, root = _source(args)
    official = fmt == "modelnet-c"
    if official and args.seeds > 1:
        raise Act3dError(
            "--seeds: the ModelNet-C files are one draw; several draws need a dataset corrupted here"
        )
    protocol = {"data": "ModelNet-C files", "format": fmt, "root": root}
    if official:
        files, labels = read_modelnet_c(root, list(SETTINGS), model.class_names)
        _check_sizes({k: v.shape[1] for k, v in files.items()}, model.model.patching)
        return (lambda seed: files), labels, protocol | {"variant": None, "num_points": None, "seeds": None}
    variant = dataset_variant(args, "scan")
    clean, labels = _clean_split(fmt, root, variant, args, model.class_names)
    sizes = {s: corrupted_size(clean.shape[1], s.rsplit("_", 1)[0], int(s[-1])) for s in SETTINGS}
    _check_sizes(sizes, model.model.patching)
    protocol |= {"data": f"{fmt} test split corrupted by act3d", "variant": variant}
    protocol |= {"num_points": args.num_points, "seeds": [args.seed + i for i in range(args.seeds)]}
    return (lambda seed: {"clean": clean, **corrupted_sets(clean, seed)}), labels, protocol


def _eval_robust(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from act3d.api import load_model
    from act3d.eval.robust import (
        SETTINGS,
        accuracies,
        classified_right,
        cloud_values,
        outcomes_by_corruption,
        scores,
    )

    out = eval_output(args)
    model = load_model(args.checkpoint, args.precision)
    model.require_classifier("eval robust")
    draw, labels, protocol = _draws(args, model)
    official = protocol["format"] == "modelnet-c"
    per_seed, paired, examples = [], {}, {}
    for seed in [args.seed + i for i in range(args.seeds)]:
        sets = draw(seed)
        examples = examples or {name: sets[name][0] for name in SETTINGS}
        names = tqdm(
            ["clean", *SETTINGS], desc=f"robust (seed {seed})", unit="set", disable=not args.progress
        )
        correct = {
            n: classified_right(model.model, sets[n], labels, model.device, model.precision) for n in names
        }
        clean_oa, oa = accuracies(correct)
        per_seed.append({"seed": seed, "clean_oa": clean_oa, "oa": oa} | scores(oa, clean_oa))
        values = cloud_values(outcomes_by_corruption(correct), correct["clean"]) | {"clean": correct["clean"]}
        for measure, v in values.items():
            paired.setdefault(measure, {})[str(seed)] = [float(x) for x in v]
    clean_oa = float(np.mean([s["clean_oa"] for s in per_seed]))
    oa = {c: np.mean([s["oa"][c] for s in per_seed], axis=0).tolist() for c in per_seed[0]["oa"]}
    result = scores(oa, clean_oa)
    comparison = (
        compare_to(args.compare_to, paired, protocol, "draw", errors=("mCE", "RmCE"))
        if args.compare_to
        else []
    )
    out.mkdir(parents=True, exist_ok=True)  # made only now: a refused or failed run leaves nothing
    _pictures(out, oa, clean_oa, examples, protocol["data"])
    rows = [ScoreRow.of("clean_oa", clean_oa, "test", args.seed, vars(args) | {"run": None})]
    rows += [
        ScoreRow.of(k, result[k], "test", args.seed, vars(args) | {"run": None})
        for k in ("mCE", "RmCE", "mOA")
    ]
    summary = RobustSummary(
        "eval robust",
        rows,
        protocol,
        paired,
        comparison,
        checkpoint=args.checkpoint,
        official=official,
        clean_oa=clean_oa,
        oa=oa,
        corruptions=result["corruptions"],
        mCE=result["mCE"],
        RmCE=result["RmCE"],
        mOA=result["mOA"],
        per_seed=per_seed,
    )
    summary.write(out)
    _report(result, clean_oa, protocol["data"], len(labels), comparison)
    return 0


def _pictures(out: Path, oa: dict, clean_oa: float, examples: dict, data: str) -> None:
    from act3d.viz import plot_corruption_table, render_clouds

    plot_corruption_table(oa, clean_oa, out / "robustness.png", data)
    names = list(examples)
    render_clouds([examples[n] for n in names], out / "corruptions.png", titles=names, ncols=5, size=1.0)


def _report(result: dict, clean_oa: float, data: str, clouds: int, comparison: list[dict]) -> None:
    log.info(
        "%s, %d clouds: clean OA %.1f%%, mCE %.3f, RmCE %.3f (DGCNN = 1)",
        data,
        clouds,
        100 * clean_oa,
        result["mCE"],
        result["RmCE"],
    )
    for c, s in result["corruptions"].items():
        log.info("  %-15s OA %.1f%%  CE %.3f  RCE %.3f", c, 100 * s["OA"], s["CE"], s["RCE"])
    for c in comparison:
        log.info("%s", c["text"])


def register(sub: argparse._SubParsersAction) -> None:
    robust = sub.add_parser(
        "robust",
        help="ModelNet-C corruption robustness of a fine-tuned classifier: 7 corruptions x 5 levels, mCE, RmCE",
        description="Score a fine-tuned classifier on the clean test clouds and on the seven ModelNet-C "
        "corruptions at five levels each: the official files (a folder of clean.h5 and "
        "<corruption>_<level>.h5), or the test split of any dataset act3d reads, corrupted here exactly as the "
        "official code does from a recorded seed (not the official draw: its numbers are named apart). "
        "Writes OUT/summary.json (clean_oa, oa per corruption and level, CE/RCE, mCE, RmCE), "
        "OUT/robustness.png and OUT/corruptions.png.",
    )
    robust.add_argument("--checkpoint", required=True, help="a classifier checkpoint from `act3d finetune`")
    robust.add_argument(
        "--data",
        metavar="DIR_OR_default",
        help="a ModelNet-C folder, a folder written by `act3d data prepare`, or `default` (the embedded data)",
    )
    robust.add_argument(
        "--format", default="default", help="instead of --data: a data format act3d reads, or modelnet-c"
    )
    robust.add_argument("--root", help="with --format: the dataset folder")
    robust.add_argument("--variant", help=VARIANT_HELP + " (default scan)")
    robust.add_argument(
        "--num-points",
        type=positive_int,
        default=CLEAN_POINTS,
        help="points per clean cloud of a dataset corrupted here (default 1024, as ModelNet-C)",
    )
    robust.add_argument("--seed", type=int, default=0, help="the first corruption draw's seed")
    robust.add_argument(
        "--seeds", type=positive_int, default=1, help="corruption draws (seeds SEED..SEED+N-1)"
    )
    robust.add_argument("--out", required=True, help="folder for summary.json and the pictures")
    robust.add_argument("--overwrite", action="store_true", help="replace OUT/summary.json if it exists")
    robust.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_precision_arg(robust)
    add_compare_arg(robust, "clouds of each draw")
    robust.set_defaults(run=_eval_robust)
