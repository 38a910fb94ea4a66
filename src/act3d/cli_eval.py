"""Stage III commands: `act3d finetune`, `act3d eval svm|fewshot`, `act3d embed`, `act3d predict`."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from act3d.cli_train import add_config_args
from act3d.config import load_config, to_dict

log = logging.getLogger("act3d")


def config_hash(config: dict) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def write_results(out: Path, rows: list[dict], extra: dict) -> Path:
    """`results.json`: one row per metric (metric, value, split, seed, config hash) plus context."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps({"results": rows, **extra}, indent=2))
    return path


def _finetune(args: argparse.Namespace) -> int:
    from act3d.eval.metrics import mean_std
    from act3d.train.finetune import FinetuneRunConfig, finetune

    overrides = list(args.overrides) + ([f"checkpoint={args.checkpoint}"] if args.checkpoint else [])
    accs, rows = [], []
    for seed in range(args.seeds):
        cfg = load_config(FinetuneRunConfig, "finetune", args.preset, args.config, overrides + [f"runtime.seed={seed}"])
        out = Path(args.out) / f"seed{seed}" if args.seeds > 1 else Path(args.out)
        res = finetune(cfg, out, resume=args.resume)
        accs.append(res["test_acc"])
        h = config_hash(to_dict(cfg))
        rows += [{"metric": "overall_accuracy", "value": res["val_acc"], "split": "val", "seed": seed, "config_hash": h},
                 {"metric": "overall_accuracy", "value": res["test_acc"], "split": "test", "seed": seed, "config_hash": h},
                 {"metric": "mean_class_accuracy", "value": res["test_macc"], "split": "test", "seed": seed, "config_hash": h}]
        log.info("seed %d: OA %.2f%%, mAcc %.2f%% (votes %d)", seed, 100 * res["test_acc"], 100 * res["test_macc"], res["votes"])
    mean, std = mean_std(accs)
    write_results(Path(args.out), rows, {"overall_accuracy_mean": mean, "overall_accuracy_std": std, "seeds": args.seeds})
    log.info("overall accuracy: %.2f ± %.2f %% over %d seed(s)", 100 * mean, 100 * std, args.seeds)
    return 0


def _features_for(args: argparse.Namespace, split: str):
    from act3d.data.dataset import DataConfig, open_source, stack_clouds
    from act3d.eval.probe import extract_features
    from act3d.models import zoo

    encoder, arch = zoo.load_student(args.checkpoint)
    data_cfg = DataConfig(format=args.format, root=args.root, variant=args.variant or ("pb_t50_rs" if args.format == "scanobjectnn" else "scan"),
                          num_points=args.num_points or arch["num_points"])
    source = open_source(data_cfg, split)
    x, y = stack_clouds(source, data_cfg.num_points)
    return extract_features(encoder, x, zoo.patch_config(arch)), y.numpy(), source.class_names


def _eval_svm(args: argparse.Namespace) -> int:
    from act3d.eval.probe import svm_probe

    ftr, ytr, names = _features_for(args, "train")
    fte, yte, _ = _features_for(args, "test")
    res = svm_probe(ftr, ytr, fte, yte, len(names), seed=args.seed)
    h = config_hash(vars(args) | {"run": None})
    rows = [{"metric": "overall_accuracy", "value": res["test_acc"], "split": "test", "seed": args.seed, "config_hash": h},
            {"metric": "mean_class_accuracy", "value": res["test_macc"], "split": "test", "seed": args.seed, "config_hash": h}]
    write_results(Path(args.out), rows, {"svm_C": res["C"], "val_acc": res["val_acc"], "test_acc": res["test_acc"], "checkpoint": args.checkpoint})
    print(f"linear SVM probe: OA {100 * res['test_acc']:.2f}%  mAcc {100 * res['test_macc']:.2f}%  "
          f"(C={res['C']} chosen by {res['val_acc']:.3f} cross-validated accuracy on the training split)")
    return 0


def _eval_fewshot(args: argparse.Namespace) -> int:
    from act3d.data.dataset import stack_clouds
    from act3d.data.modelnet import modelnet40_fewshot
    from act3d.eval.metrics import mean_std, overall_accuracy
    from act3d.eval.probe import _svm_pipeline, extract_features, fewshot
    from act3d.models import zoo

    settings = [(w, s) for w in args.way for s in args.shot]
    rows, table = [], {}
    if args.fewshot_root:  # the official fold pickles
        encoder, arch = zoo.load_student(args.checkpoint)
        patches, num_points = zoo.patch_config(arch), arch["num_points"]
        for way, shot in settings:
            accs = []
            for fold in range(args.folds):
                train, test = modelnet40_fewshot(args.fewshot_root, way, shot, fold)
                tx, ty = stack_clouds(train, num_points)
                vx, vy = stack_clouds(test, num_points)
                clf = _svm_pipeline(1.0).fit(extract_features(encoder, tx, patches), ty.numpy())
                accs.append(overall_accuracy(clf.predict(extract_features(encoder, vx, patches)), vy.numpy()))
            mean, std = mean_std(accs)
            table[f"{way}w{shot}s"] = {"mean": mean, "std": std, "folds": accs}
    else:  # folds drawn deterministically from any labelled set
        ftr, ytr, _ = _features_for(args, "train")
        fte, yte, _ = _features_for(args, "test")
        table = fewshot(ftr, ytr, fte, yte, settings, folds=args.folds, seed=args.seed)
    for key, v in table.items():
        rows.append({"metric": f"fewshot_{key}_accuracy_mean", "value": v["mean"], "std": v["std"], "split": "test",
                     "seed": args.seed, "config_hash": config_hash(vars(args) | {"run": None})})
        print(f"{key}: {100 * v['mean']:.1f} ± {100 * v['std']:.1f} %  ({len(v['folds'])} folds)")
    write_results(Path(args.out), rows, {"checkpoint": args.checkpoint, "table": table})
    return 0


def _embed(args: argparse.Namespace) -> int:
    from act3d.api import load_model, read_clouds

    model = load_model(args.checkpoint)
    feats = np.concatenate([model.embed(c) for c in read_clouds(args.files)])
    np.save(args.out, feats)
    print(f"wrote {args.out}: {feats.shape[0]} embeddings of size {feats.shape[1]}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from act3d.api import load_model, read_clouds

    model = load_model(args.checkpoint)
    for path, cloud in zip(args.files, read_clouds(args.files)):
        pred = model.predict(cloud, k=args.top_k)[0]
        print(f"{path}: " + ", ".join(f"{n} {100 * p:.1f}%" for n, p in zip(pred.labels, pred.probabilities)))
    return 0


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="Stage II student checkpoint")
    p.add_argument("--format", default="default", help="data format (default: the embedded dataset)")
    p.add_argument("--root", help="dataset folder")
    p.add_argument("--variant", help="default: clean | scan; scanobjectnn: obj_bg | obj_only | pb_t50_rs")
    p.add_argument("--num-points", type=int, help="points per cloud (default: as pretrained)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for results.json")


def register(commands: argparse._SubParsersAction) -> None:
    ft = commands.add_parser("finetune", help="Stage III: fine-tune (full) or probe (linear / mlp3) a student on a classification set")
    add_config_args(ft, "finetune", "cpu")
    ft.add_argument("--checkpoint", help="Stage II student checkpoint (omit to train from scratch)")
    ft.add_argument("--seeds", type=int, default=1, help="repeat with seeds 0..N-1 and report mean ± std")
    ft.set_defaults(run=_finetune)

    ev = commands.add_parser("eval", help="frozen-feature protocols: linear SVM probe, few-shot")
    sub = ev.add_subparsers(dest="eval_command", metavar="PROTOCOL", required=True)
    svm = sub.add_parser("svm", help="linear SVM on frozen features, C chosen by cross-validation on the training split")
    _data_args(svm)
    svm.set_defaults(run=_eval_svm)
    fs = sub.add_parser("fewshot", help="N-way K-shot episodes, mean ± std over folds")
    _data_args(fs)
    fs.add_argument("--fewshot-root", help="ModelNetFewshot folder with the official fold pickles")
    fs.add_argument("--way", type=int, nargs="+", default=[5, 10])
    fs.add_argument("--shot", type=int, nargs="+", default=[10, 20])
    fs.add_argument("--folds", type=int, default=10)
    fs.set_defaults(run=_eval_fewshot)

    emb = commands.add_parser("embed", help="features of your own point-cloud / mesh files from a trained checkpoint")
    emb.add_argument("files", nargs="+", help="point clouds (.npy .npz .ply .xyz .txt .pts) or meshes (.off .obj .ply .stl)")
    emb.add_argument("--checkpoint", required=True, help="Stage II student or fine-tuned classifier checkpoint")
    emb.add_argument("--out", required=True, help=".npy file to write: one feature row per input file")
    emb.set_defaults(run=_embed)

    pred = commands.add_parser("predict", help="top-k classes of your own files from a fine-tuned classifier")
    pred.add_argument("files", nargs="+", help="point clouds (.npy .npz .ply .xyz .txt .pts) or meshes (.off .obj .ply .stl)")
    pred.add_argument("--checkpoint", required=True, help="fine-tuned classifier checkpoint (from act3d finetune)")
    pred.add_argument("--top-k", type=int, default=5, help="classes listed per file (default 5)")
    pred.set_defaults(run=_predict)


def _segment(args: argparse.Namespace) -> int:
    from act3d.train.segment import SegmentRunConfig, segment

    overrides = list(args.overrides) + [f"task={args.task}"]
    if args.root:
        overrides.append(f"data.root={args.root}")
    if args.task == "semantic":
        overrides.append("data.format=s3dis")
    if args.checkpoint:
        overrides.append(f"checkpoint={args.checkpoint}")
    cfg = load_config(SegmentRunConfig, "segment", args.preset, args.config, overrides)
    res = segment(cfg, args.out, resume=args.resume)
    print(", ".join(f"{k} {100 * v:.2f}%" for k, v in res["metrics"].items()))
    return 0


def register_segment(commands: argparse._SubParsersAction) -> None:
    seg = commands.add_parser("segment", help="part segmentation (ShapeNetPart) or semantic segmentation (S3DIS, Area 5 held out)")
    add_config_args(seg, "segment", "paper_part")
    seg.add_argument("--task", choices=["part", "semantic"], default="part")
    seg.add_argument("--root", help="dataset folder (shapenetcore_partanno_segmentation_benchmark_v0_normal or stanford_indoor3d)")
    seg.add_argument("--checkpoint", help="Stage II student checkpoint (omit to train from scratch)")
    seg.set_defaults(run=_segment)
