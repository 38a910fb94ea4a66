"""`act3d embed` and `act3d predict`: features and classes of your own files."""

from __future__ import annotations

import argparse

import numpy as np

from act3d.cli.common import output_file, positive_int


def _embed(args: argparse.Namespace) -> int:
    from act3d.api import load_model, read_clouds

    out = output_file(args.out, ".npy")
    model = load_model(args.checkpoint)
    feats = np.concatenate([model.embed(c) for c in read_clouds(args.files)])
    np.save(out, feats)
    print(f"wrote {out}: {feats.shape[0]} embeddings of size {feats.shape[1]}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from act3d.api import load_model, read_clouds

    model = load_model(args.checkpoint)
    for path, cloud in zip(args.files, read_clouds(args.files)):
        pred = model.predict(cloud, k=args.top_k)[0]
        print(f"{path}: " + ", ".join(f"{n} {100 * p:.1f}%" for n, p in zip(pred.labels, pred.probabilities)))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    emb = commands.add_parser(
        "embed", help="features of your own point-cloud / mesh files from a trained checkpoint"
    )
    emb.add_argument(
        "files",
        nargs="+",
        help="point clouds (.npy .npz .ply .xyz .txt .pts) or meshes (.off .obj .ply .stl)",
    )
    emb.add_argument(
        "--checkpoint", required=True, help="Stage II student or fine-tuned classifier checkpoint"
    )
    emb.add_argument(
        "--out",
        required=True,
        help=".npy file to write, one feature row per input file (.npy is added when missing)",
    )
    emb.set_defaults(run=_embed)

    pred = commands.add_parser("predict", help="top-k classes of your own files from a fine-tuned classifier")
    pred.add_argument(
        "files",
        nargs="+",
        help="point clouds (.npy .npz .ply .xyz .txt .pts) or meshes (.off .obj .ply .stl)",
    )
    pred.add_argument(
        "--checkpoint", required=True, help="fine-tuned classifier checkpoint (from act3d finetune)"
    )
    pred.add_argument("--top-k", type=positive_int, default=5, help="classes listed per file (default 5)")
    pred.set_defaults(run=_predict)
