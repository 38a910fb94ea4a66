"""`act3d embed` and `act3d predict`: features and classes of your own files, or of a dataset's split."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from act3d.atomic import atomic_file, write_text_atomic
from act3d.cli.common import (
    VARIANT_HELP,
    add_precision_arg,
    check_outputs,
    dataset_variant,
    output_file,
    positive_int,
)
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
    sorted order). Left out of a folder: the files an earlier `embed` wrote (`X.npy` beside its `X.files.txt`
    or `X.labels.npy`, and those), which are features, not clouds."""
    files = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        inside = [f for f in sorted(path.rglob("*")) if f.is_file() and f.suffix.lower() in READABLE]
        earlier = [f for f in inside if is_embedding_output(f)]
        if earlier:
            log.info("left out %d file(s) an earlier act3d embed wrote: %s", len(earlier), earlier[0])
        inside = [f for f in inside if f not in earlier]
        if not inside:
            raise Act3dError(f"{path}: no point-cloud or mesh files inside ({', '.join(sorted(READABLE))})")
        files += inside
    return files


def beside_features(features: Path, dataset: bool) -> Path:
    """The file `embed` writes beside its features `X.npy`: `X.labels.npy` for a dataset, else `X.files.txt`."""
    stem = features.with_suffix("")
    return stem.with_name(stem.name + (".labels.npy" if dataset else ".files.txt"))


def is_embedding_output(path: Path) -> bool:
    """Whether `path` is a file `act3d embed` writes: features `X.npy` (with `X.files.txt` or `X.labels.npy`
    beside it), or those two."""
    if path.name.endswith((".labels.npy", ".files.txt")):
        return True
    return path.suffix == ".npy" and any(beside_features(path, d).is_file() for d in (False, True))


def _inputs(
    args: argparse.Namespace,
    model: Act3dModel,
    skipped: list[str],
    files: list[Path] | None,
    scored: bool = False,
) -> Iterator[tuple[str, np.ndarray, int]]:
    """`(name, cloud (num_points, 3), label or -1)` for each of `files` (`input_files`), read one at a time
    (resampled as `model.prepare` does; a file that cannot be read is named in a warning, added to `skipped`
    and left out), or without files each cloud of the dataset split (as evaluation reads it). `scored`: the
    dataset's labels are compared with the classifier's predictions, so its classes must be the
    classifier's."""
    if files is not None:
        from tqdm.auto import tqdm

        from act3d.data.files import read_cloud

        for path in tqdm(files, desc="files", unit="file", disable=None):
            try:
                if "\n" in str(path) or "\r" in str(path):
                    raise DataError(
                        f"{str(path)!r}: its name holds a line break, which the one-name-per-line "
                        ".files.txt cannot hold; rename it"
                    )
                cloud = model.prepare(read_cloud(path))[0].numpy()
            except DataError as err:
                if len(files) == 1:  # the one file asked for: its error, not a skip
                    raise
                log.warning("skipped: %s", err)
                skipped.append(str(path))
                continue
            yield str(path), cloud, -1
        return
    from act3d.data.dataset import DataConfig, PointClouds, open_source

    source = open_source(
        DataConfig(format=args.format, root=args.root, variant=dataset_variant(args)), args.split
    )
    if scored and len(source.class_names) > len(model.class_names):
        raise DataError(
            f"{args.format} {args.split} has {len(source.class_names)} classes, the classifier "
            f"{len(model.class_names)}: its accuracy on these labels would mean nothing; expected the dataset "
            "the classifier was fine-tuned on"
        )
    clouds = PointClouds(source, model.num_points, train=False)
    for i in range(len(clouds)):
        points, label = clouds[i]
        yield source[i].origin or f"{source.name}[{i}]", points.numpy(), label


def _check_inputs(args: argparse.Namespace) -> None:
    """Files or a dataset, not both, not neither."""
    if args.format is None and not args.files:
        raise Act3dError("give files or folders, or a dataset with --format (and --root)")
    if args.format is not None and args.files:
        raise Act3dError("give files or --format, not both")


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

    _check_inputs(args)
    out = output_file(args.out, ".npy")
    beside = beside_features(out, args.format is not None)
    files = input_files(args.files) if args.format is None else None
    check_outputs([out, beside], [*(files or []), Path(args.checkpoint)], args.overwrite)
    model = load_model(args.checkpoint, args.precision)
    if args.pooling == "head":
        model.require_classifier("--pooling head")
    elif model.peft_method:
        log.warning(
            "%s is a %s classifier: --pooling %s gives the backbone's features without its prompts/adapters; "
            "--pooling head gives what its head reads",
            args.checkpoint,
            model.peft_method,
            args.pooling,
        )
    feats, names, labels, skipped = [], [], [], []
    for batch in _batches(_inputs(args, model, skipped, files)):  # one batch in memory at a time
        feats.append(model.embed(np.stack([cloud for _, cloud, _ in batch]), args.pooling))
        names += [name for name, _, _ in batch]
        labels += [label for _, _, label in batch]
    if not feats:
        raise Act3dError(f"none of the {len(skipped)} file(s) could be read (each is named above)")
    features = np.concatenate(feats)
    with atomic_file(out, "wb") as f:
        np.save(f, features)
    what = model.feature_description(args.pooling)
    print(f"wrote {out}: {features.shape[0]} embeddings of size {features.shape[1]} ({what})")
    if args.format is not None:
        with atomic_file(beside, "wb") as f:
            np.save(f, np.array(labels, dtype=np.int64))
        print(f"wrote {beside}: their class labels")
    else:
        write_text_atomic(beside, "".join(f"{name}\n" for name in names))
        print(
            f"wrote {beside}: the file of each row"
            + (f"; skipped {len(skipped)} unreadable file(s)" if skipped else "")
        )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from act3d.api import load_model
    from act3d.eval.metrics import mean_class_accuracy, overall_accuracy

    _check_inputs(args)
    files = input_files(args.files) if args.format is None else None
    model = load_model(args.checkpoint, args.precision)
    model.require_classifier("predict")
    truth, guess, skipped = [], [], []
    for batch in _batches(_inputs(args, model, skipped, files, scored=True)):
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
    from act3d.api import EMBED_POOLINGS

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
        help=".npy file to write, one feature row per cloud (.npy is added when missing), and beside it "
        "<name>.files.txt (the file of each row) or, with --format, <name>.labels.npy; existing ones are "
        "replaced only with --overwrite, and never an input",
    )
    emb.add_argument("--overwrite", action="store_true", help="replace the output files if they exist")
    emb.add_argument(
        "--pooling",
        choices=EMBED_POOLINGS,
        default="max+mean",
        help="which features: max+mean (default) or cls+max pool the backbone's tokens, every checkpoint alike "
        "(max+mean is the SVM probe's; a PEFT classifier's backbone without its prompts/adapters); head "
        "(classifiers): exactly what the head reads, the PEFT method's features included",
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
