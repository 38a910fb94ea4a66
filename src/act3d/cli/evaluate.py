"""`act3d eval svm` and `act3d eval fewshot`: frozen-feature protocols on a pretrained student."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from act3d.cli.common import (
    VARIANT_HELP,
    add_compare_arg,
    compare_to,
    config_hash,
    dataset_variant,
    output_folder,
    positive_int,
    write_results,
)

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
    return split_features(encoder, zoo.patch_config(arch), data_cfg)


def _eval_svm(args: argparse.Namespace) -> int:
    from act3d.eval.probe import svm_probe

    output_folder(args.out)
    ftr, ytr, fte, yte, names = _features(args)
    res = svm_probe(ftr, ytr, fte, yte, len(names), seed=args.seed)
    h = config_hash(vars(args) | {"run": None})
    rows = [
        {
            "metric": "overall_accuracy",
            "value": res["test_acc"],
            "split": "test",
            "seed": args.seed,
            "config_hash": h,
        },
        {
            "metric": "mean_class_accuracy",
            "value": res["test_macc"],
            "split": "test",
            "seed": args.seed,
            "config_hash": h,
        },
    ]
    write_results(
        Path(args.out),
        rows,
        {
            "svm_C": res["C"],
            "val_acc": res["val_acc"],
            "test_acc": res["test_acc"],
            "checkpoint": args.checkpoint,
        },
    )
    print(
        f"linear SVM probe: OA {100 * res['test_acc']:.2f}%  mAcc {100 * res['test_macc']:.2f}%  "
        f"(C={res['C']} chosen by {res['val_acc']:.3f} cross-validated accuracy on the training split)"
    )
    return 0


def _eval_fewshot(args: argparse.Namespace) -> int:
    from act3d.data.modelnet import modelnet40_fewshot
    from act3d.eval.metrics import mean_std, overall_accuracy
    from act3d.eval.probe import _svm_pipeline, fewshot, source_features
    from act3d.models import zoo

    output_folder(args.out)
    settings = [(w, s) for w in args.way for s in args.shot]
    rows, table = [], {}
    if args.fewshot_root:  # the official fold pickles
        encoder, arch = zoo.load_student(args.checkpoint)
        patches, num_points = zoo.patch_config(arch), arch["num_points"]
        for way, shot in settings:
            accs = []
            for fold in range(args.folds):
                train, test = modelnet40_fewshot(args.fewshot_root, way, shot, fold)
                train_x, train_y = source_features(encoder, patches, train, num_points)
                test_x, test_y = source_features(encoder, patches, test, num_points)
                clf = _svm_pipeline(1.0).fit(train_x, train_y)
                accs.append(overall_accuracy(clf.predict(test_x), test_y))
            mean, std = mean_std(accs)
            table[f"{way}w{shot}s"] = {"mean": mean, "std": std, "folds": accs}
    else:  # folds drawn deterministically from any labelled set
        ftr, ytr, fte, yte, _ = _features(args)
        table = fewshot(ftr, ytr, fte, yte, settings, folds=args.folds, seed=args.seed)
    for key, v in table.items():
        rows.append(
            {
                "metric": f"fewshot_{key}_accuracy_mean",
                "value": v["mean"],
                "std": v["std"],
                "split": "test",
                "seed": args.seed,
                "config_hash": config_hash(vars(args) | {"run": None}),
            }
        )
        print(f"{key}: {100 * v['mean']:.1f} ± {100 * v['std']:.1f} %  ({len(v['folds'])} folds)")
    # folds pair two checkpoints only when they saw the same episodes: the same data, seed and fold files
    protocol = {
        k: getattr(args, k) for k in ("format", "root", "variant", "num_points", "seed", "fewshot_root")
    }
    paired = {key: {str(i): acc for i, acc in enumerate(v["folds"])} for key, v in table.items()}
    comparison = compare_to(args.compare_to, paired, protocol, "episode") if args.compare_to else []
    for c in comparison:
        print(c["text"])
    extra = {"checkpoint": args.checkpoint, "table": table, "protocol": protocol, "paired_values": paired}
    write_results(Path(args.out), rows, extra | {"paired": comparison})
    return 0


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="Stage II student checkpoint")
    p.add_argument("--format", default="default", help="data format (default: the embedded dataset)")
    p.add_argument("--root", help="dataset folder")
    p.add_argument("--variant", help=VARIANT_HELP + " (default scan)")
    p.add_argument("--num-points", type=positive_int, help="points per cloud (default: as pretrained)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for results.json")


def register(commands: argparse._SubParsersAction) -> None:
    ev = commands.add_parser("eval", help="frozen-feature protocols: linear SVM probe, few-shot")
    sub = ev.add_subparsers(dest="eval_command", metavar="PROTOCOL", required=True)
    svm = sub.add_parser(
        "svm", help="linear SVM on frozen features, C chosen by cross-validation on the training split"
    )
    _data_args(svm)
    svm.set_defaults(run=_eval_svm)
    fs = sub.add_parser("fewshot", help="N-way K-shot episodes, mean ± std over folds")
    _data_args(fs)
    fs.add_argument("--fewshot-root", help="ModelNetFewshot folder with the official fold pickles")
    fs.add_argument("--way", type=positive_int, nargs="+", default=[5, 10])
    fs.add_argument("--shot", type=positive_int, nargs="+", default=[10, 20])
    fs.add_argument("--folds", type=positive_int, default=10)
    add_compare_arg(fs, "episodes")
    fs.set_defaults(run=_eval_fewshot)
