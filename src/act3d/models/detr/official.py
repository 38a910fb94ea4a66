"""3DETR's checkpoints <-> act3d detector checkpoints (the `detector` layout of `import-official` and
`export-official`).

3DETR's main.py saves `{"model": state dict, "optimizer", "epoch", "args": argparse.Namespace,
"best_val_metrics": {0.25: {...}, 0.5: {...}} of numpy scalars}` with `torch.save` (utils/io.py l.8-30).
act3d reads it with `weights_only=True`, allowing exactly `argparse.Namespace` and the numpy scalar types
beside tensors and containers; nothing else in the file can load, so nothing in it runs. The weights keep
3DETR's names but for the set abstractions' shared MLPs: 3DETR's `mlp_module.layer{i}.conv` and
`mlp_module.layer{i}.bn.bn` (third_party/pointnet2/pytorch_utils.py) are act3d's `mlp.{3i}` and
`mlp.{3i+1}`. An export writes `{"model": state dict in 3DETR's names, "epoch", "act3d": record}`, plain
values only, which 3DETR's `--test_ckpt` reads (main.py l.305-313) and act3d imports back.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import torch

from act3d.atomic import atomic_file, names_a_folder
from act3d.config import from_dict
from act3d.data.scannet import CLASSES
from act3d.errors import CheckpointError
from act3d.models import zoo
from act3d.models.checkpoint import (
    load_checkpoint,
    load_state_strict,
    model_payload,
    read_weight_file,
    safe_torch_load,
    save_checkpoint,
)
from act3d.models.detr.model import DetrConfig

OFFICIAL_GLOBALS = (argparse.Namespace,)  # beside numpy scalars (`numpy_scalar_globals`)
CLASS_HEAD = "mlp_heads.sem_cls_head.layers.8.weight"  # its last 1x1 conv: classes + background
_OURS = re.compile(r"^(.*)\.mlp\.(\d+)\.(\w+)$")
_THEIRS = re.compile(r"^(.*)\.mlp_module\.layer(\d+)\.(conv|bn\.bn)\.(\w+)$")
_SET_ABSTRACTIONS = ("pre_encoder", "encoder.interim_downsampling")


def to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """act3d detector weights -> 3DETR's names."""
    out = {}
    for key, value in state.items():
        m = _OURS.match(key)
        if m and m.group(1) in _SET_ABSTRACTIONS:
            layer, part = divmod(int(m.group(2)), 3)
            key = f"{m.group(1)}.mlp_module.layer{layer}.{'conv' if part == 0 else 'bn.bn'}.{m.group(3)}"
        out[key] = value
    return out


def from_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """3DETR's weights -> act3d's names (the inverse of `to_official`)."""
    out = {}
    for key, value in state.items():
        m = _THEIRS.match(key)
        if m and m.group(1) in _SET_ABSTRACTIONS:
            key = f"{m.group(1)}.mlp.{3 * int(m.group(2)) + (m.group(3) == 'bn.bn')}.{m.group(4)}"
        out[key] = value
    return out


def official_record(path: str | Path) -> dict[str, Any]:
    """What a 3DETR checkpoint says beside its weights: `epoch` and `args` (as a dict), where it has them."""
    try:
        raw = safe_torch_load(Path(path), OFFICIAL_GLOBALS)
    except Exception:  # read_weight_file has already said why a file cannot be read
        return {}
    if not isinstance(raw, dict):
        return {}
    record: dict[str, Any] = {}
    if isinstance(raw.get("epoch"), int):
        record["epoch"] = raw["epoch"]
    if isinstance(raw.get("args"), argparse.Namespace):
        record["args"] = {
            k: v for k, v in vars(raw["args"]).items() if isinstance(v, (str, int, float, bool))
        }
    return record


def check_fits(state: dict[str, torch.Tensor], detr: DetrConfig, source: str) -> None:
    """Refuse, in one line, weights of another class count or encoder than the preset builds."""
    head = state.get(CLASS_HEAD)
    if head is None:
        raise CheckpointError(f"{source}: no {CLASS_HEAD}: not a 3DETR checkpoint")
    if head.shape[0] != detr.num_classes + 1:
        raise CheckpointError(
            f"{source}: its class head predicts {head.shape[0] - 1} classes (+ background), the preset "
            f"{detr.num_classes} (ScanNet's); a checkpoint of another dataset (SUN RGB-D: 10) does not fit"
        )
    masked = any(k.startswith("encoder.interim_downsampling.") for k in state)
    if masked != (detr.encoder == "masked"):
        raise CheckpointError(
            f"{source}: holds a {'masked (3DETR-m)' if masked else 'vanilla'} encoder, the preset builds a "
            f"{detr.encoder} one; use --preset detect.scannet_3detr{'_masked' if masked else ''}"
        )


def import_detector(path: str | Path, config: dict[str, Any], out: str | Path) -> Path:
    """A 3DETR checkpoint -> an act3d detector checkpoint at `out`, the architecture from `config` (a detect
    run config: `detect.scannet_3detr` or `_masked`), checked to fit before anything is written."""
    detr = from_dict(DetrConfig, config["detr"])
    if detr.encoder == "act":
        raise CheckpointError("3DETR's checkpoints hold its own encoders; choose a vanilla or masked preset")
    state = from_official(read_weight_file(path, OFFICIAL_GLOBALS))
    check_fits(state, detr, str(path))
    arch = zoo.detector_arch(detr, None, config["scenes"]["num_points"], list(CLASSES))
    model = zoo.build(zoo.DETECTOR, arch)
    load_state_strict(model, state, str(path))
    record = official_record(path)
    payload = model_payload(
        zoo.DETECTOR, model.state_dict(), 0, config, arch, source=str(path), official=record
    )
    return save_checkpoint(out, payload)


def export_path(out: str | Path) -> Path:
    """The file `export_detector` writes: `out.pth` (a `.pth` given stands as it is)."""
    if names_a_folder(out):
        raise CheckpointError(
            f"--out {out}: is a folder; expected a path without suffix, e.g. {Path(out) / 'model'}"
        )
    out = Path(out)
    return out if out.suffix == ".pth" else out.with_name(out.name + ".pth")


def export_detector(checkpoint: str | Path, out: str | Path) -> Path:
    """An act3d detector checkpoint -> 3DETR's layout at `export_path(out)`, written atomically."""
    ckpt = load_checkpoint(checkpoint, zoo.DETECTOR)
    if ckpt["arch"]["detr"].get("encoder") == "act":
        raise CheckpointError(
            f"{checkpoint}: its encoder is an act3d student, which 3DETR's layout has no names for; keep the "
            "act3d checkpoint"
        )
    record = {"kind": ckpt["kind"], "arch": ckpt["arch"], "source": str(checkpoint)}
    payload = {"model": to_official(ckpt["model"]), "epoch": int(ckpt.get("step") or 0), "act3d": record}
    path = export_path(out)
    with atomic_file(path, "wb", fsync=True) as f:
        torch.save(payload, f)
    return path
