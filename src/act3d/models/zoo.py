"""The one place that rebuilds act3d models from checkpoints.

The five models are named `teacher`, `student`, `classifier`, `segmenter` and `detector`
(`act3d.models.kinds.MODELS`): a checkpoint of one carries the kind `act3d-<model>` (`act3d.models.kinds.kind_of`),
and the official checkpoint layout of each has the same name (`act3d.models.official`, the detector's
`act3d.models.detr.official`); each is what one stage of `act3d.stages` trains.

Every checkpoint carries `arch`: the model-level description its model is rebuilt from (no run config, no
training code, no original pretrained-Transformer weight file). The five kinds:

- `act3d-teacher`: `{"patching", "model" (AutoencoderConfig), "transformer" (TransformerArch)}`
- `act3d-student`: `{"patching", "student" (StudentConfig), "target_dim", "num_points"}`
- `act3d-classifier`: `{"patching", "student", "num_points", "class_names", "head" (ClassifierHead)}`
- `act3d-segmenter`: `{"patching", "student", "num_points", "task", "class_names", "head" (SegmenterHead)}`
- `act3d-detector`: `{"detr" (DetrConfig), "student" (StudentConfig of an `act` encoder, else None), "num_points",
  "class_names"}`

Each entry is `to_dict` of a config dataclass (or a plain value), and `build` reads it back with `from_dict`.

`*_arch` functions write these descriptions, `build` turns one into a model with fresh weights, and
`load` reads a checkpoint into its model, strictly.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from torch import nn

from act3d.config import from_dict, to_dict
from act3d.errors import CheckpointError, ConfigError
from act3d.models.autoencoder import AutoencoderConfig, CrossModalAutoencoder
from act3d.models.checkpoint import load_checkpoint, load_state_strict
from act3d.models.classifier import ClassifierHead, PointClassifier
from act3d.models.detr.model import Detector3DETR, DetrConfig
from act3d.models.kinds import MODELS, kind_of
from act3d.models.pretrained import PretrainedTransformer
from act3d.models.segmenter import PointSegmenter, SegmenterHead
from act3d.models.student import MaskedPointModel, StudentConfig, StudentEncoder
from act3d.ops.grouping import PatchConfig

TEACHER, STUDENT, CLASSIFIER, SEGMENTER, DETECTOR = (kind_of(m) for m in MODELS)
KINDS = (TEACHER, STUDENT, CLASSIFIER, SEGMENTER, DETECTOR)


def teacher_arch(
    model: AutoencoderConfig, patching: PatchConfig, backbone: PretrainedTransformer
) -> dict[str, Any]:
    return {
        "patching": to_dict(patching),
        "model": to_dict(model),
        "transformer": to_dict(replace(backbone.arch, name=backbone.name)),
    }


def student_arch(
    student: StudentConfig, patching: PatchConfig, target_dim: int | None, num_points: int
) -> dict[str, Any]:
    return {
        "patching": to_dict(patching),
        "student": to_dict(student),
        "target_dim": target_dim,
        "num_points": num_points,
    }


def classifier_arch(
    student: StudentConfig,
    patching: PatchConfig,
    num_points: int,
    class_names: list[str],
    head: ClassifierHead,
) -> dict[str, Any]:
    return {
        "patching": to_dict(patching),
        "student": to_dict(student),
        "num_points": num_points,
        "class_names": list(class_names),
        "head": to_dict(head),
    }


def segmenter_arch(
    student: StudentConfig,
    patching: PatchConfig,
    num_points: int,
    task: Literal["part", "semantic"],
    class_names: list[str],
    head: SegmenterHead,
) -> dict[str, Any]:
    return {
        "patching": to_dict(patching),
        "student": to_dict(student),
        "num_points": num_points,
        "task": task,
        "class_names": list(class_names),
        "head": to_dict(head),
    }


def detector_arch(
    detr: DetrConfig, student: StudentConfig | None, num_points: int, class_names: list[str]
) -> dict[str, Any]:
    return {
        "detr": to_dict(detr),
        "student": to_dict(student) if student is not None else None,
        "num_points": num_points,
        "class_names": list(class_names),
    }


def patch_config(arch: dict[str, Any]) -> PatchConfig:
    return from_dict(PatchConfig, arch["patching"])


def student_config(arch: dict[str, Any]) -> StudentConfig:
    return from_dict(StudentConfig, arch["student"])


def build(kind: str, arch: dict[str, Any]) -> nn.Module:
    """A model of `kind` with the architecture `arch` describes (fresh weights)."""
    if kind == TEACHER:
        return CrossModalAutoencoder(
            from_dict(AutoencoderConfig, arch["model"]),
            patch_config(arch),
            PretrainedTransformer.skeleton(arch["transformer"]),
        )
    if kind == STUDENT:
        return MaskedPointModel(student_config(arch), patch_config(arch), arch["target_dim"])
    if kind == CLASSIFIER:
        head = from_dict(ClassifierHead, arch["head"])
        return PointClassifier(StudentEncoder(student_config(arch)), head, patch_config(arch))
    if kind == SEGMENTER:
        widths = dict(arch["head"])
        if "head" in widths:  # checkpoints written before the hidden widths were named `hidden`
            widths["hidden"] = widths.pop("head")
        head = from_dict(SegmenterHead, widths)
        return PointSegmenter(StudentEncoder(student_config(arch)), head, patch_config(arch))
    if kind == DETECTOR:
        student = student_config(arch) if arch["student"] is not None else None
        return Detector3DETR(from_dict(DetrConfig, arch["detr"]), student)
    raise CheckpointError(f"unknown model kind {kind!r}; one of {KINDS}")


def load(path: str | Path, kind: str | tuple[str, ...] = KINDS) -> tuple[nn.Module, dict[str, Any]]:
    """The model a checkpoint holds, weights loaded strictly and in eval mode, and the checkpoint itself."""
    ckpt = load_checkpoint(path, kind)
    try:
        model = build(ckpt["kind"], ckpt["arch"])
    except KeyError as err:  # e.g. a checkpoint written before `teacher` became `transformer` (0.1)
        raise CheckpointError(
            f"{path}: its architecture record has no {err}; it was written by another act3d version"
        ) from None
    except ConfigError as err:  # a record act3d cannot build: hand-edited, or settings refused since
        raise CheckpointError(f"{path}: its architecture record: {err}") from None
    load_state_strict(model, ckpt["model"], str(path))
    return model.eval(), ckpt


def load_teacher(path: str | Path) -> CrossModalAutoencoder:
    """A trained Stage I autoencoder, frozen and in eval mode (the Stage II target)."""
    model, _ = load(path, TEACHER)
    return model.requires_grad_(False)


def load_student(path: str | Path, drop_path: float | None = None) -> tuple[StudentEncoder, dict[str, Any]]:
    """The pretrained student backbone of a Stage II checkpoint, and its `arch`. With `drop_path`, set up to
    train further with that stochastic depth (the run's own rate, not the pretraining's); `arch` says so too."""
    model, ckpt = load(path, STUDENT)
    arch = ckpt["arch"]
    if drop_path is not None:
        model.encoder.blocks.set_drop_path(drop_path)
        arch = {**arch, "student": {**arch["student"], "drop_path": drop_path}}
    return model.encoder, arch
