"""Checkpoints: written atomically, read without unpickling code (`weights_only=True`), and checked to
belong to the model that loads them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from act3d.errors import CheckpointError

FORMAT_VERSION = 1
KINDS = ("act3d-teacher", "act3d-student", "act3d-classifier", "act3d-segmenter")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` (plus the format version) to `path` atomically: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"format_version": FORMAT_VERSION, **payload}, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, kind: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read an act3d checkpoint; with `kind`, refuse one of another kind with a message saying what it is."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, ...
        raise CheckpointError(f"{path}: not a readable act3d checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict) or "kind" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{path}: not an act3d checkpoint (no 'kind'/'model' entries); official ACT "
                              "checkpoints are read with act3d.interop")
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted and ckpt["kind"] not in wanted:
        raise CheckpointError(f"{path} is a {ckpt['kind']} checkpoint, but a {' or '.join(wanted)} checkpoint is needed")
    return ckpt


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """`load_state_dict` with an error that lists missing / unexpected / mis-shaped keys and names the file."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{source} does not fit this model: missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}, shape mismatches {wrong[:4]}")
    model.load_state_dict(state)
