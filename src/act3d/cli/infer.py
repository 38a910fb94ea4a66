"""`act3d embed` and `act3d predict`: features and classes of your own files, or of a dataset's split."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from act3d.cli.common import VARIANT_HELP, add_precision_arg, dataset_variant, output_file, positive_int
from act3d.data.formats import FORMATS
from act3d.errors import Act3dError

if TYPE_CHECKING:
    from act3d.api import Act3dModel

BATCH = 64


def _inputs(args: argparse.Namespace, model: Act3dModel) -> Iterator[tuple[str, np.ndarray, int]]:
    """`(name, cloud (num_points, 3), label or -1)` for each file given (resampled as `model.prepare`
    does), or each cloud of the dataset split (as evaluation reads it)."""
    if args.format is None:
        if not args.files:
            raise Act3dError("give files, or a dataset with --format (and --root)")
        from act3d.api import read_clouds

        for path, cloud in zip(args.files, read_clouds(args.files)):
            yield path, model.prepare(cloud)[0].numpy(), -1
        return
    if args.files:
        raise Act3dError("give files or --format, not both")
    from act3d.data.dataset import DataConfig, PointClouds, open_source

    source = open_source(
        DataConfig(format=args.format, root=args.root, variant=dataset_variant(args)), args.split
    )
    clouds = PointClouds(source, model.num_points, train=False)
    for i in range(len(clouds)):
        points, label = clouds[i]
        yield source[i].origin or f"{source.name}[{i}]", points.numpy(), label


def _batches(items: Iterator, size: int = BATCH) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _embed(args: argparse.Namespace) -> int:
    from act3d.api import load_model

    out = output_file(args.out, ".npy")
    model = load_model(args.checkpoint, args.precision)
    feats, labels = [], []
    for batch in _batches(_inputs(args, model)):
        feats.append(model.embed(np.stack([cloud for _, cloud, _ in batch]), args.pooling))
        labels += [label for _, _, label in batch]
    features = np.concatenate(feats)
    np.save(out, features)
    print(f"wrote {out}: {features.shape[0]} embeddings of size {features.shape[1]} ({args.pooling} pooling)")
    if args.format is not None:
        label_file = out.with_name(out.stem + ".labels.npy")
        np.save(label_file, np.array(labels, dtype=np.int64))
        print(f"wrote {label_file}: their class labels")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from act3d.api import load_model
    from act3d.eval.metrics import mean_class_accuracy, overall_accuracy

    model = load_model(args.checkpoint, args.precision)
    truth, guess = [], []
    for batch in _batches(_inputs(args, model)):
        preds = model.predict(np.stack([cloud for _, cloud, _ in batch]), k=args.top_k)
        for (name, _, label), pred in zip(batch, preds):
            if args.format is None:
                print(
                    f"{name}: "
                    + ", ".join(f"{n} {100 * p:.1f}%" for n, p in zip(pred.labels, pred.probabilities))
                )
            truth.append(label)
            guess.append(model.class_names.index(pred.labels[0]))
    if args.format is not None:
        y, p = np.array(truth), np.array(guess)
        print(
            f"{len(y)} clouds of {args.format} {args.split}: OA {100 * overall_accuracy(p, y):.2f}%  "
            f"mAcc {100 * mean_class_accuracy(p, y, len(model.class_names)):.2f}%"
        )
    return 0


def _input_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "files",
        nargs="*",
        help="point clouds (.npy .npz .ply .xyz .txt .pts) or meshes (.off .obj .ply .stl)",
    )
    p.add_argument("--format", choices=FORMATS, help="instead of files: a dataset, e.g. class-folders")
    p.add_argument("--root", help="the dataset's folder")
    p.add_argument("--variant", help=VARIANT_HELP)
    p.add_argument(
        "--split", default="test", choices=["train", "test"], help="the dataset's split (default test)"
    )
    add_precision_arg(p)


def register(commands: argparse._SubParsersAction) -> None:
    emb = commands.add_parser(
        "embed", help="features of your own point-cloud / mesh files (or a dataset) from a trained checkpoint"
    )
    _input_args(emb)
    emb.add_argument(
        "--checkpoint", required=True, help="Stage II student or fine-tuned classifier checkpoint"
    )
    emb.add_argument(
        "--out",
        required=True,
        help=".npy file to write, one feature row per cloud (.npy is added when missing); with --format "
        "also <name>.labels.npy",
    )
    emb.add_argument(
        "--pooling",
        choices=["max+mean", "cls+max"],
        default="max+mean",
        help="how the backbone's tokens become one feature: max+mean (default, every checkpoint alike, as the "
        "SVM probe) or cls+max (the cls token and the max: what a classifier's head reads)",
    )
    emb.set_defaults(run=_embed)

    pred = commands.add_parser(
        "predict",
        help="top-k classes of your own files (or a dataset's accuracy) from a fine-tuned classifier",
    )
    _input_args(pred)
    pred.add_argument(
        "--checkpoint", required=True, help="fine-tuned classifier checkpoint (from act3d finetune)"
    )
    pred.add_argument("--top-k", type=positive_int, default=5, help="classes listed per file (default 5)")
    pred.set_defaults(run=_predict)
