"""`act3d eval svm` and `act3d eval fewshot`: frozen-feature protocols on a pretrained student."""

from __future__ import annotations

import argparse
import logging

from act3d.cli.common import (
    VARIANT_HELP,
    add_compare_arg,
    add_precision_arg,
    compare_to,
    dataset_variant,
    eval_output,
    positive_int,
)
from act3d.cli.robust import register as register_robust
from act3d.cli.summary import FewshotSummary, ScoreRow, SvmSummary

log = logging.getLogger("act3d")


def _features(args: argparse.Namespace):
    """The student's frozen features of the dataset's train and test splits (`eval.probe.split_features`)."""
    from act3d.data.dataset import DataConfig
    from act3d.eval.probe import split_features
    from act3d.models import zoo

    encoder, arch = zoo.load_student(args.checkpoint)
    data_cfg = DataConfig(
        format=args.format,
        root=args.root,
        variant=dataset_variant(args, default="scan"),
        num_points=args.num_points or arch["num_points"],
    )
    return split_features(encoder, zoo.patch_config(arch), data_cfg, args.precision)


def _eval_svm(args: argparse.Namespace) -> int:
    from act3d.eval.probe import svm_probe

    out = eval_output(args)
    ftr, ytr, fte, yte, names = _features(args)
    res = svm_probe(ftr, ytr, fte, yte, len(names), seed=args.seed)
    config = vars(args) | {"run": None}
    rows = [
        ScoreRow.of("oa", res["test_acc"], "test", args.seed, config),
        ScoreRow.of("macc", res["test_macc"], "test", args.seed, config),
    ]
    log.info(
        "linear SVM probe: OA %.2f%%  mAcc %.2f%%  (C=%s chosen by %.3f cross-validated accuracy on the "
        "training split)",
        100 * res["test_acc"],
        100 * res["test_macc"],
        res["C"],
        res["val_acc"],
    )
    # one fit, its outcome per test cloud: two checkpoints pair cloud by cloud on the same data and seed
    protocol = _protocol(args)
    paired = {"svm test OA": {"0": res["correct"]}}
    comparison = compare_to(args.compare_to, paired, protocol, "fit") if args.compare_to else []
    for c in comparison:
        log.info("%s", c["text"])
    fit = {"svm_C": res["C"], "cross_validated_acc": res["val_acc"]}
    SvmSummary("eval svm", rows, protocol, paired, comparison, checkpoint=args.checkpoint, **fit).write(out)
    return 0


def _protocol(args: argparse.Namespace) -> dict:
    """What two evaluations must share for their clouds or episodes to pair: the data and the seed."""
    keys = ("format", "root", "variant", "num_points", "seed", "fewshot_root")
    return {k: getattr(args, k, None) for k in keys}


def _eval_fewshot(args: argparse.Namespace) -> int:
    from act3d.eval.probe import fewshot, fewshot_folds

    out = eval_output(args)
    settings = [(w, s) for w in args.way for s in args.shot]
    if args.fewshot_root:  # the official fold pickles
        table = fewshot_folds(args.checkpoint, args.fewshot_root, settings, args.folds, args.precision)
    else:  # folds drawn deterministically from any labelled set
        ftr, ytr, fte, yte, _ = _features(args)
        table = fewshot(ftr, ytr, fte, yte, settings, folds=args.folds, seed=args.seed)
    config = vars(args) | {"run": None}
    rows = [
        ScoreRow.of(f"fewshot_{key}_oa", v["mean"], "test", args.seed, config) for key, v in table.items()
    ]
    for key, v in table.items():
        log.info("%s: %.1f ± %.1f %%  (%d folds)", key, 100 * v["mean"], 100 * v["std"], len(v["folds"]))
    protocol = _protocol(args)  # folds pair only when both saw the same episodes: data, seed, fold files
    paired = {key: {str(i): outcomes for i, outcomes in enumerate(v["correct"])} for key, v in table.items()}
    comparison = compare_to(args.compare_to, paired, protocol, "episode") if args.compare_to else []
    for c in comparison:
        log.info("%s", c["text"])
    FewshotSummary(
        "eval fewshot", rows, protocol, paired, comparison, checkpoint=args.checkpoint, table=table
    ).write(out)
    return 0


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="Stage II student checkpoint")
    p.add_argument("--format", default="default", help="data format (default: the embedded dataset)")
    p.add_argument("--root", help="dataset folder")
    p.add_argument("--variant", help=VARIANT_HELP + " (default scan)")
    p.add_argument("--num-points", type=positive_int, help="points per cloud (default: as pretrained)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for summary.json")
    p.add_argument("--overwrite", action="store_true", help="replace OUT/summary.json if it exists")
    add_precision_arg(p)


def register(commands: argparse._SubParsersAction) -> None:
    ev = commands.add_parser(
        "eval", help="frozen-feature protocols (linear SVM probe, few-shot) and corruption robustness"
    )
    sub = ev.add_subparsers(dest="eval_command", metavar="PROTOCOL", required=True)
    svm = sub.add_parser(
        "svm", help="linear SVM on frozen features, C chosen by cross-validation on the training split"
    )
    _data_args(svm)
    add_compare_arg(svm, "test clouds")
    svm.set_defaults(run=_eval_svm)
    fs = sub.add_parser("fewshot", help="N-way K-shot episodes, mean ± std over folds")
    _data_args(fs)
    fs.add_argument("--fewshot-root", help="ModelNetFewshot folder with the official fold pickles")
    fs.add_argument("--way", type=positive_int, nargs="+", default=[5, 10])
    fs.add_argument("--shot", type=positive_int, nargs="+", default=[10, 20])
    fs.add_argument("--folds", type=positive_int, default=10)
    add_compare_arg(fs, "episodes")
    fs.set_defaults(run=_eval_fewshot)
    register_robust(sub)
