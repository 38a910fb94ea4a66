"""`act3d embed` and `act3d predict`: features and classes of your own files, or of a dataset's split."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from act3d.cli.common import VARIANT_HELP, add_precision_arg, dataset_variant, output_file, positive_int
from act3d.data.files import CLOUD_SUFFIXES, MESH_SUFFIXES
from act3d.data.formats import FORMATS
from act3d.errors import Act3dError, DataError

if TYPE_CHECKING:
    from act3d.api import Act3dModel

log = logging.getLogger("act3d")
BATCH = 64
READABLE = CLOUD_SUFFIXES | MESH_SUFFIXES  # what a folder given to embed / predict is searched for


def input_files(paths: list[str]) -> list[Path]:
    """The files given, each folder expanded to the point-cloud and mesh files inside it (recursively, in
    sorted order)."""
    files = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        inside = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in READABLE)
        if not inside:
            raise Act3dError(f"{path}: no point-cloud or mesh files inside ({', '.join(sorted(READABLE))})")
        files += inside
    return files


def _inputs(
    args: argparse.Namespace, model: Act3dModel, skipped: list[str]
) -> Iterator[tuple[str, np.ndarray, int]]:
    """`(name, cloud (num_points, 3), label or -1)` for each file given, read one at a time (resampled as
    `model.prepare` does; a file that cannot be read is named in a warning, added to `skipped` and left
    out), or each cloud of the dataset split (as evaluation reads it)."""
    if args.format is None:
        if not args.files:
            raise Act3dError("give files or folders, or a dataset with --format (and --root)")
        from tqdm.auto import tqdm

        from act3d.data.files import read_cloud

        files = input_files(args.files)
        for path in tqdm(files, desc="files", unit="file", disable=None):
            try:
                cloud = model.prepare(read_cloud(path))[0].numpy()
            except DataError as err:
                if len(files) == 1:  # the one file asked for: its error, not a skip
                    raise
                log.warning("skipped: %s", err)
                skipped.append(str(path))
                continue
            yield str(path), cloud, -1
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
    feats, names, labels, skipped = [], [], [], []
    for batch in _batches(_inputs(args, model, skipped)):  # one batch of clouds in memory at a time
        feats.append(model.embed(np.stack([cloud for _, cloud, _ in batch]), args.pooling))
        names += [name for name, _, _ in batch]
        labels += [label for _, _, label in batch]
    if not feats:
        raise Act3dError(f"none of the {len(skipped)} file(s) could be read (each is named above)")
    features = np.concatenate(feats)
    np.save(out, features)
    print(f"wrote {out}: {features.shape[0]} embeddings of size {features.shape[1]} ({args.pooling} pooling)")
    if args.format is not None:
        label_file = out.with_name(out.stem + ".labels.npy")
        np.save(label_file, np.array(labels, dtype=np.int64))
        print(f"wrote {label_file}: their class labels")
    else:
        names_file = out.with_name(out.stem + ".files.txt")
        names_file.write_text("".join(f"{name}\n" for name in names))
        print(
            f"wrote {names_file}: the file of each row"
            + (f"; skipped {len(skipped)} unreadable file(s)" if skipped else "")
        )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from act3d.api import load_model
    from act3d.eval.metrics import mean_class_accuracy, overall_accuracy

    model = load_model(args.checkpoint, args.precision)
    truth, guess, skipped = [], [], []
    for batch in _batches(_inputs(args, model, skipped)):
        preds = model.predict(np.stack([cloud for _, cloud, _ in batch]), k=args.top_k)
        for (name, _, label), pred in zip(batch, preds):
            if args.format is None:
                print(
                    f"{name}: "
                    + ", ".join(f"{n} {100 * p:.1f}%" for n, p in zip(pred.labels, pred.probabilities))
                )
            truth.append(label)
            guess.append(model.class_names.index(pred.labels[0]))
    if not truth:
        raise Act3dError(f"none of the {len(skipped)} file(s) could be read (each is named above)")
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
        help="point clouds (.npy .npz .ply .xyz .txt .pts) or meshes (.off .obj .ply .stl), or folders of "
        "them (read one at a time; a file that cannot be read is named and skipped)",
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
